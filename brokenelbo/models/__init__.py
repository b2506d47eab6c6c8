"""The VAE (`vae.VAE`) and its swappable parts, each a gin configurable.

- `encoders`: e(z|x), a conv Gaussian, optionally followed by an IAF (`flows`).
- `decoders`: d(x|z), factorised Bernoulli deconvolutions, or a gated PixelCNN
  (`pixelcnn/`: the network, its Bernoulli distribution, the fast row sampler).
- `marginals`: m(z), N(0, I), a MAF (`flows`), or a VampPrior.
- `layers`: the gated dense and convolutional layers they share.
- `families`: the paper's 12 families by name; `synthetic`: the LiBI experiments' model.
"""
