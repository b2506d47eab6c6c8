"""The gated PixelCNN decoder's parts: the network (`network`), its Bernoulli distribution
over images (`distribution`) and the fast raster-order sampler (`row_sampling`)."""
