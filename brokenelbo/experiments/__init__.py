"""The papers' experiments: studies (`study`: runs trained and evaluated by the commands,
resumably, executed by `launchers` here or on Slurm), the rate-distortion sweep (`sweep`,
over the runs of `grid`), LiBI's Table 1 (`libi_table`, its protocol; `libi_runs`, the
study and its figures), the toy model of Section 4.1 (`toy`) and the benchmark (`bench`)."""
