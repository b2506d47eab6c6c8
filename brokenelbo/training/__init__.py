"""Training: the root configurable (`trainer.train`), the compiled step (`step.Trainer`),
the distributed protocol (`distributed`), the loop and its periodic actions (`loop`), what a
step minimises (`losses`, `objectives`), the optimizer (`optimizers`), a run's directory
(`run_dir`) and record (`run_record`), its summaries (`summaries`) and how a finished run is
restored (`restore`)."""
