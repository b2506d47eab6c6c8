"""The paper's experiments: its 12 families (`families`), the rate-distortion sweep
(`sweep`, over the runs of `grid`, run by `launchers`), the toy model of Section 4.1
(`toy`) and the performance benchmark (`bench`)."""
