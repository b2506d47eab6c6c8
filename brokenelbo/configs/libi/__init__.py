"""The packaged gin configs of the LiBI experiments (Yacoby et al. 2020, Appendix E).

`base.gin` (the shared setting), one file per method (`vae.gin`, `beta_vae.gin`,
`beta_vae_anneal.gin`, `lagging.gin`, `libi.gin`) and `smoke.gin`. A package, so that an
`include 'brokenelbo/configs/libi/base.gin'` resolves through gin's reader of files in
installed packages from any working directory.
"""
