"""Marginals m(z): the prior over the latent code.

Every marginal is called as `marginal(encoder)` and returns a `tfd.Distribution` with event
shape `[latent_size]`; only the VampPrior uses the encoder.

- `-`: `StandardNormal`, fixed N(0, I).
- `+`: `FlowMarginal`, N(0, I) transformed by 4 shift-only MAF steps.
- `v`: `VampPrior`, m(z) = sum_i w_i e(z|phi_i) with learned pseudo-inputs phi_i and softmax
  weights w.
"""

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import domains
from brokenelbo import errors

tfd = tfp.distributions


@gin.configurable
class StandardNormal(tf.Module):
  """Fixed isotropic Gaussian m(z) = N(0, I): the `-` marginal."""

  def __init__(self, latent_size, name=None):
    super().__init__(name=name)
    self.latent_size = latent_size

  def __call__(self, encoder=None):
    del encoder
    return tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_size]))


@gin.configurable
class FlowMarginal(tf.Module):
  """N(0, I) pushed through a flow (a shift-only MAF): the `+` marginal.

  Args:
    latent_size: Python `int`, dimension of z.
    flow: callable `flow(event_size=...)` returning an object with a `.bijector`
      (`@ShiftOnlyFlow`, a MAF so that `log_prob` is one parallel pass).
  """

  def __init__(self, latent_size, flow=gin.REQUIRED, name=None):
    super().__init__(name=name)
    self.latent_size = latent_size
    self.flow = flow(event_size=latent_size)

  def __call__(self, encoder=None):
    del encoder
    return tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(loc=tf.zeros([self.latent_size])), self.flow.bijector)


@gin.configurable
@domains.checked(num_pseudo_inputs=domains.POSITIVE_INT, image_shape=domains.IMAGE_SHAPE)
class VampPrior(tf.Module):
  """Variational mixture of posteriors m(z) = sum_i w_i e(z|phi_i): the `v` marginal.

  The pseudo-inputs phi_i are learned images (initialised uniformly in [0, 1]) and the
  mixture weights are `softmax(logits)`, learned. With a flowed (`+`) encoder the Gaussian
  components are mixed first and the encoder's own flow then transforms the mixture, so
  that m(z) = (flow_# sum_i w_i N(loc_i, scale_i))(z). Because the flow is shared, the rate
  of a z drawn from e(z|x) needs no inversion: TFP's bijector cache returns the
  pre-flow sample, and the (zero) log-determinants cancel.

  Args:
    latent_size: Python `int`, dimension of z.
    num_pseudo_inputs: Python `int`, number of mixture components (default 500).
    image_shape: Python `tuple` `(H, W, C)`, shape of one pseudo-input: the data's
      (`configs/images.gin` binds it to `@example_shape()`). Default `(28, 28, 1)`.

  #### References

  [1] Tomczak, Welling. VAE with a VampPrior. AISTATS 2018.
  """

  def __init__(self, latent_size, num_pseudo_inputs=500, image_shape=(28, 28, 1),
               name=None):
    super().__init__(name=name)
    self.latent_size = latent_size
    self.image_shape = tuple(image_shape)
    self.pseudo_inputs = tf.Variable(
        tf.random.uniform([num_pseudo_inputs, *image_shape], seed=1), name='pseudo_inputs')
    self.logits = tf.Variable(tf.zeros([num_pseudo_inputs]), name='mixture_logits')

  def check_image_shape(self, image_shape):
    """Raises a `UserError` naming `VampPrior.image_shape` unless the pseudo-inputs are
    images of `image_shape`, the encoder's input."""
    if self.image_shape != tuple(image_shape):
      raise errors.UserError(
          f'the data are {"x".join(map(str, image_shape))} images but VampPrior.image_shape '
          f'is {self.image_shape}: bind VampPrior.image_shape = {tuple(image_shape)}, or to '
          '@example_shape() as configs/images.gin does')

  def __call__(self, encoder):
    gaussian = encoder.gaussian(self.pseudo_inputs)
    mixture = tfd.MixtureSameFamily(tfd.Categorical(logits=self.logits), gaussian)
    if encoder.flow is None:
      return mixture
    return tfd.TransformedDistribution(mixture, encoder.flow.bijector)
