"""The VAE as three swappable parts: encoder e(z|x), decoder d(x|z), marginal m(z).

All quantities are in nats per example:

  rate        R = E_{p*(x) e(z|x)} [log e(z|x) - log m(z)]
  distortion  D = -E_{p*(x) e(z|x)} [log d(x|z)]
  ELBO          = -(R + D)

and H - D <= I(X; Z) <= R (Section 2 of the paper). The rate is always a Monte Carlo
estimate from a reparameterised z ~ e(z|x): marginals are flows and mixtures, so no
analytic KL is assumed.
"""

import gin
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.models import decoders
from brokenelbo.models import encoders
from brokenelbo.models import marginals


@gin.configurable
@domains.checked(latent_size=domains.POSITIVE_INT)
class VAE(tf.Module):
  """A VAE assembled from configurable parts.

  Args:
    encoder: callable `encoder(latent_size=...)` -> encoder module (`@ConvEncoder`).
    decoder: callable `decoder()` -> decoder module (`@DeconvDecoder`, `@PixelCNNDecoder`).
    marginal: callable `marginal(latent_size=...)` -> marginal module (`@StandardNormal`,
      `@FlowMarginal`, `@VampPrior`).
    latent_size: Python `int`, dimension of z (paper: 64).
  """

  def __init__(self, encoder=gin.REQUIRED, decoder=gin.REQUIRED, marginal=gin.REQUIRED,
               latent_size=64, name=None):
    super().__init__(name=name)
    self.latent_size = latent_size
    self.encoder = encoder(latent_size=latent_size)
    self.decoder = decoder()
    self.marginal = marginal(latent_size=latent_size)

  @property
  def family(self):
    """The family's name of Section 5: one letter per part, encoder, decoder, marginal.

    '-' or '+': a Gaussian encoder without or with its IAF; the factorised deconvolutional
    decoder or the PixelCNN; '-', '+' or 'v': N(0, I), a MAF or a VampPrior. A part of
    another kind (a user's own) is '?'.
    """
    encoder = ('?' if not isinstance(self.encoder, encoders.ConvEncoder)
               else '-' if self.encoder.flow is None else '+')
    decoder = {decoders.DeconvDecoder: '-', decoders.PixelCNNDecoder: '+'}.get(
        type(self.decoder), '?')
    marginal = {marginals.StandardNormal: '-', marginals.FlowMarginal: '+',
                marginals.VampPrior: 'v'}.get(type(self.marginal), '?')
    return encoder + decoder + marginal

  def marginal_distribution(self):
    """m(z) as a `tfd.Distribution` (a VampPrior needs the encoder)."""
    return self.marginal(self.encoder)

  def rate_distortion(self, x, seed):
    """Per-example rate and distortion `[B]` for images `x`, one z ~ e(z|x) each.

    Args:
      x: `float32` `Tensor` `[B, H, W, C]` in {0, 1} (`[B, 28, 28, 1]` for MNIST).
      seed: stateless seed, `int32` `Tensor` of shape `[2]`.

    Returns:
      rate, distortion: `Tensor`s `[B]`, nats per example.
    """
    posterior = self.encoder(x)
    z, log_e = posterior.experimental_sample_and_log_prob(seed=seed)
    rate = log_e - self.marginal_distribution().log_prob(z)
    distortion = -self.decoder(z).log_prob(x)
    return rate, distortion

  def reconstruct(self, x, seed):
    """z ~ e(z|x), then x' ~ d(x|z); returns (z, x')."""
    seed_z, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z = self.encoder(x).sample(seed=seed_z)
    return z, self.decoder(z).sample(seed=seed_x)

  def generate(self, num, seed):
    """z ~ m(z), then x ~ d(x|z); returns (z, x)."""
    seed_z, seed_x = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    z = self.marginal_distribution().sample(num, seed=seed_z)
    return z, self.decoder(z).sample(seed=seed_x)
