"""Figures: the rate-distortion plane of a sweep (`rd_plane`, Figure 3), its information
against beta (`information`: R, I_e, H - D, the marginal gap, E and G), reconstruction and
generation grids of trained runs (`grids`, Figure 4), the toy model (`figure2`, Figure 2),
a sweep in TensorBoard's HParams dashboard (`hparams`) and the LiBI paper's Figures 1-5
(`libi_figures`)."""
