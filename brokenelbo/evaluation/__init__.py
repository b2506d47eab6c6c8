"""What a trained run is measured by: the evaluation of a restored run on a split, recorded
in its directory (`evaluate_run`), the information suite of a VAE run (`suite`), and the
evaluation of every restart of a LiBI-experiment run (`synthetic_run`)."""
