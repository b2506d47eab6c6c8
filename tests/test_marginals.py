"""Tests for `marginals`: closed forms and brute-force mixtures written out in numpy.

  StandardNormal:  log m(z) = -||z||^2 / 2 - d/2 log(2 pi)
  FlowMarginal:    log m(z) = log N(f^{-1}(z); 0, I)            (log|det| = 0)
  VampPrior:       log m(z) = logsumexp_k [log w_k + log N(z; loc_k, scale_k)]
                   with (loc_k, scale_k) the encoder's Gaussian on pseudo-input k; with a
                   flowed encoder, z is first mapped back through the encoder's flow.
"""

from absl.testing import parameterized
import numpy as np
from scipy import special
import tensorflow as tf
import tf_keras

from brokenelbo.models import encoders
from brokenelbo.models import flows
from brokenelbo.models import marginals

LATENT_SIZE = 3
IMAGE_SHAPE = (4, 4, 1)
NUM_PSEUDO_INPUTS = 4


def _normal(shape, seed):
  return tf.constant(np.random.RandomState(seed).randn(*shape).astype(np.float32))


def _fresh(t):
  """A new tensor with the same value, so that no bijector cache entry applies to it."""
  return tf.constant(t.numpy())


def _log_normal(z, loc, scale):
  """log N(z; loc, diag(scale^2)) summed over the last axis, in float64."""
  z, loc, scale = (np.asarray(a, np.float64) for a in (z, loc, scale))
  return np.sum(-0.5 * ((z - loc) / scale)**2 - np.log(scale) - 0.5 * np.log(2. * np.pi),
                axis=-1)


def _iaf(event_size):
  return flows.ShiftOnlyFlow(event_size=event_size, num_steps=2, hidden_units=(8,),
                             inverse=True)


def _encoder(flow=None):
  tf_keras.utils.set_random_seed(3)
  # One gated conv: 4x4x1 -> 2x2x4 -> Dense to loc and scale.
  return encoders.ConvEncoder(LATENT_SIZE, conv_layers=((4, 3, 2, 'same'),), flow=flow)


def _vamp_prior(encoder):
  prior = marginals.VampPrior(LATENT_SIZE, num_pseudo_inputs=NUM_PSEUDO_INPUTS,
                              image_shape=IMAGE_SHAPE)
  # Unequal weights, so that a wrong weighting shows.
  prior.logits.assign([0.5, -1., 2., 0.])
  return prior


def _brute_force_mixture(encoder, prior, z0):
  """logsumexp_k (log w_k + log N(z0; loc_k, scale_k)) from the encoder's Gaussians."""
  gaussian = encoder.gaussian(prior.pseudo_inputs)
  loc = gaussian.loc.numpy()
  scale = gaussian.stddev().numpy()
  assert loc.shape == scale.shape == (NUM_PSEUDO_INPUTS, LATENT_SIZE), (loc.shape, scale.shape)
  log_w = special.log_softmax(prior.logits.numpy().astype(np.float64))
  components = _log_normal(np.asarray(z0)[:, None, :], loc[None], scale[None])  # [B, K]
  return special.logsumexp(log_w[None] + components, axis=-1)


class StandardNormalTest(tf.test.TestCase):

  def test_log_prob_closed_form(self):
    z = _normal([5, LATENT_SIZE], 0)
    expected = (-0.5 * np.sum(z.numpy().astype(np.float64)**2, axis=-1) -
                0.5 * LATENT_SIZE * np.log(2. * np.pi))
    m = marginals.StandardNormal(LATENT_SIZE)()
    self.assertEqual(m.event_shape, [LATENT_SIZE])
    self.assertAllClose(expected, m.log_prob(z), rtol=1e-6, atol=1e-6)
    self.assertEmpty(marginals.StandardNormal(LATENT_SIZE).trainable_variables)


class FlowMarginalTest(tf.test.TestCase):

  def _marginal(self):
    tf_keras.utils.set_random_seed(4)
    return marginals.FlowMarginal(
        LATENT_SIZE,
        flow=lambda event_size: flows.ShiftOnlyFlow(event_size, num_steps=2,
                                                    hidden_units=(8,), inverse=False))

  def test_log_prob_is_standard_normal_of_inverse(self):
    marginal = self._marginal()
    m = marginal()
    z = _normal([5, LATENT_SIZE], 1)
    log_prob = m.log_prob(z)
    bijector = marginal.flow.bijector
    z0 = bijector.inverse(_fresh(z)).numpy()
    self.assertGreater(np.abs(z0 - z.numpy()).max(), 1e-2)  # The flow is not the identity.
    # z0 really is the preimage of z.
    self.assertAllClose(z, bijector.forward(tf.constant(z0)), rtol=0., atol=1e-5)
    expected = _log_normal(z0, 0., 1.)
    self.assertAllClose(expected, log_prob, rtol=0., atol=1e-4)

  def test_variables_are_the_flows(self):
    marginal = self._marginal()
    marginal().log_prob(tf.zeros([1, LATENT_SIZE]))
    self.assertLen(marginal.trainable_variables, 2 * 4)  # 2 MADEs of 2 dense layers.


class VampPriorTest(tf.test.TestCase, parameterized.TestCase):

  def test_log_prob_is_brute_force_mixture(self):
    encoder = _encoder()
    prior = _vamp_prior(encoder)
    m = prior(encoder)
    self.assertEqual(m.event_shape, [LATENT_SIZE])
    z = _normal([6, LATENT_SIZE], 2)
    self.assertAllClose(_brute_force_mixture(encoder, prior, z.numpy()), m.log_prob(z),
                        rtol=0., atol=1e-4)

  def test_log_prob_at_component_means(self):
    # Near a component's mean, that component's log-weight and normaliser dominate the sum:
    # a check that does not share the brute-force code above.
    encoder = _encoder()
    prior = _vamp_prior(encoder)
    gaussian = encoder.gaussian(prior.pseudo_inputs)
    loc = gaussian.loc.numpy().astype(np.float64)
    scale = gaussian.stddev().numpy().astype(np.float64)
    log_w = special.log_softmax(prior.logits.numpy().astype(np.float64))
    log_prob = prior(encoder).log_prob(tf.constant(loc, tf.float32)).numpy()
    own = log_w + _log_normal(loc, loc, scale)
    # The mixture is at least its own weighted component, and at most the highest peak
    # of any component density (a mixture of densities is below their maximum).
    self.assertTrue(np.all(log_prob >= own - 1e-4), (log_prob, own))
    peak = np.max(_log_normal(loc, loc, scale))
    self.assertTrue(np.all(log_prob <= peak + 1e-4), (log_prob, peak))

  def test_gradients_reach_pseudo_inputs_logits_and_encoder(self):
    encoder = _encoder()
    prior = _vamp_prior(encoder)
    z = _normal([6, LATENT_SIZE], 3)
    with tf.GradientTape() as tape:
      log_prob = tf.reduce_sum(prior(encoder).log_prob(z))
    variables = [prior.pseudo_inputs, prior.logits] + list(encoder.trainable_variables)
    for v, g in zip(variables, tape.gradient(log_prob, variables)):
      self.assertIsNotNone(g, v.name)
      self.assertGreater(np.abs(g.numpy()).max(), 0., v.name)

  def test_flowed_encoder_log_prob_is_mixture_of_preimage(self):
    encoder = _encoder(flow=_iaf)
    prior = _vamp_prior(encoder)
    x = tf.constant((np.random.RandomState(4).rand(3, *IMAGE_SHAPE) < .5).astype(np.float32))
    posterior = encoder(x)
    z, log_e = posterior.experimental_sample_and_log_prob(seed=tf.constant([5, 6]))
    m = prior(encoder)
    cached = m.log_prob(z)  # As in `VAE.rate_distortion`: the IAF's cache gives z0.
    fresh = _fresh(z)
    uncached = m.log_prob(fresh)
    # The preimage computed explicitly: the IAF's inverse is the sequential direction.
    z0 = encoder.flow.bijector.inverse(fresh).numpy()
    self.assertGreater(np.abs(z0 - z.numpy()).max(), 1e-2)  # The flow is not the identity.
    self.assertAllClose(z, encoder.flow.bijector.forward(tf.constant(z0)), rtol=0., atol=1e-5)
    expected = _brute_force_mixture(encoder, prior, z0)
    self.assertAllClose(expected, cached, rtol=0., atol=1e-4)
    self.assertAllClose(expected, uncached, rtol=0., atol=1e-4)
    # The encoder's own density of z is the Gaussian's at z0 (zero log-det), both ways.
    gaussian = encoder.gaussian(x)
    expected_e = _log_normal(z0, gaussian.loc.numpy(), gaussian.stddev().numpy())
    self.assertAllClose(expected_e, log_e, rtol=0., atol=1e-4)
    self.assertAllClose(expected_e, posterior.log_prob(_fresh(z)), rtol=0., atol=1e-4)


if __name__ == '__main__':
  tf.test.main()
