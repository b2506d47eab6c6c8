"""Training: the loop (`trainer.train`, the root configurable), what a step minimises
(`losses`, `objectives`), the optimizer (`optimizers`), a run's directory (`run_dir`),
its summaries (`summaries`) and how a finished run is restored (`restore`)."""
