"""Evaluation of trained runs: the whole-split ELBO (`elbo`) and the evaluation of a
restored run (`evaluate_run`)."""
