"""Tests for the rate and distortion of `model.VAE` and for `objectives`.

With a Gaussian encoder e(z|x) = N(loc, diag(scale^2)) and m(z) = N(0, I), the rate
estimate log e(z|x) - log m(z) at z ~ e(z|x) is an unbiased Monte Carlo estimate of

  KL(e(z|x) || m(z)) = sum_d [ (scale_d^2 + loc_d^2 - 1) / 2 - log scale_d ],

and the distortion is -sum_i [x_i log sigmoid(l_i) + (1 - x_i) log sigmoid(-l_i)] for the
decoder's logits l.
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from brokenelbo.models import decoders
from brokenelbo.models import encoders
from brokenelbo.models import marginals
from brokenelbo.models import vae as model
from brokenelbo.training import objectives

tfd = tfp.distributions

LATENT_SIZE = 8


def _vae():
  tf_keras.utils.set_random_seed(0)
  return model.VAE(
      # 28 -> 14 -> 7 -> 1 and back: the paper's image size with four-channel layers.
      encoder=lambda latent_size: encoders.ConvEncoder(
          latent_size, conv_layers=((4, 5, 2, 'same'), (4, 5, 2, 'same'),
                                    (4, 7, 1, 'valid'))),
      decoder=lambda: decoders.DeconvDecoder(
          deconv_layers=((4, 7, 1, 'valid'), (4, 5, 2, 'same'), (4, 5, 2, 'same'))),
      marginal=marginals.StandardNormal,
      latent_size=LATENT_SIZE)


def _images(n, seed):
  return tf.constant((np.random.RandomState(seed).rand(n, 28, 28, 1) < .3).astype(np.float32))


def _log_normal(z, loc, scale):
  z, loc, scale = (np.asarray(a, np.float64) for a in (z, loc, scale))
  return np.sum(-0.5 * ((z - loc) / scale)**2 - np.log(scale) - 0.5 * np.log(2. * np.pi),
                axis=-1)


def _log_sigmoid(x):
  return -np.logaddexp(0., -x)


class RateDistortionTest(tf.test.TestCase):

  def test_rate_is_unbiased_estimate_of_analytic_kl(self):
    vae = _vae()
    x = _images(2, 0)
    num_samples = 4000
    rate, _ = vae.rate_distortion(tf.repeat(x, num_samples, axis=0), tf.constant([1, 2]))
    rate = rate.numpy().astype(np.float64).reshape(2, num_samples)
    posterior = vae.encoder(x)
    kl = tfd.kl_divergence(posterior, tfd.MultivariateNormalDiag(tf.zeros([LATENT_SIZE])))
    # The same closed form written out, and large enough for the test to mean something.
    loc, scale = posterior.loc.numpy(), posterior.stddev().numpy()
    self.assertAllClose(np.sum((scale**2 + loc**2 - 1.) / 2. - np.log(scale), axis=-1), kl,
                        rtol=1e-5, atol=1e-5)
    self.assertTrue(np.all(kl.numpy() > 0.3), kl)
    mean = rate.mean(axis=1)
    standard_error = rate.std(axis=1, ddof=1) / np.sqrt(num_samples)
    self.assertTrue(np.all(standard_error > 0.), standard_error)
    self.assertTrue(np.all(np.abs(mean - kl.numpy()) < 4. * standard_error),
                    (mean, kl.numpy(), standard_error))

  def test_rate_and_distortion_per_sample(self):
    vae = _vae()
    x = _images(3, 1)
    seed = tf.constant([3, 4])
    rate, distortion = vae.rate_distortion(x, seed)
    self.assertEqual(rate.shape, [3])
    self.assertEqual(distortion.shape, [3])
    # The z the model drew: the encoder's sample under the same stateless seed.
    posterior = vae.encoder(x)
    z = posterior.sample(seed=seed)
    loc, scale = posterior.loc.numpy(), posterior.stddev().numpy()
    expected_rate = _log_normal(z, loc, scale) - _log_normal(z, 0., 1.)
    self.assertAllClose(expected_rate, rate, rtol=0., atol=1e-4)
    logits = vae.decoder(z).distribution.logits.numpy().astype(np.float64)
    xn = x.numpy()
    expected_distortion = -np.sum(
        xn * _log_sigmoid(logits) + (1. - xn) * _log_sigmoid(-logits), axis=(1, 2, 3))
    self.assertAllClose(expected_distortion, distortion, rtol=1e-5, atol=1e-3)
    self.assertAllClose(-vae.decoder(z).log_prob(x), distortion, rtol=1e-6, atol=1e-4)

  def test_same_seed_same_value_new_seed_new_z(self):
    vae = _vae()
    x = _images(2, 2)
    r1, d1 = vae.rate_distortion(x, tf.constant([5, 6]))
    r2, d2 = vae.rate_distortion(x, tf.constant([5, 6]))
    r3, _ = vae.rate_distortion(x, tf.constant([5, 7]))
    self.assertAllEqual(r1, r2)
    self.assertAllEqual(d1, d2)
    self.assertGreater(np.abs(r1 - r3).max(), 1e-3)


class ObjectivesTest(tf.test.TestCase):

  def test_beta_vae(self):
    self.assertAllClose(4., objectives.beta_vae(2., 3., 0.5), rtol=0., atol=0.)
    self.assertAllClose(5., objectives.beta_vae(2., 3., 1.), rtol=0., atol=0.)  # -ELBO.
    self.assertAllClose(3., objectives.beta_vae(2., 3., 0.), rtol=0., atol=0.)

  def test_target_rate(self):
    self.assertAllClose(6., objectives.target_rate(2., 3., 0.5, target=5.), rtol=0., atol=0.)
    self.assertAllClose(5., objectives.target_rate(7., 3., 0.5, target=5.), rtol=0., atol=0.)
    self.assertAllClose(3., objectives.target_rate(5., 3., 9., target=5.), rtol=0., atol=0.)
    # The rate is pushed towards the target from both sides.
    for rate, sign in ((2., -1.), (7., 1.)):
      r = tf.constant(rate)
      with tf.GradientTape() as tape:
        tape.watch(r)
        loss = objectives.target_rate(r, tf.constant(3.), 1., target=5.)
      self.assertAllClose(sign, tape.gradient(loss, r), rtol=0., atol=0.)

  def test_target_rate_target_from_gin(self):
    gin.parse_config('target_rate.target = 5.')
    self.assertAllClose(6., objectives.target_rate(2., 3., 1.), rtol=0., atol=0.)

  def test_beta_schedule_linear_annealing(self):
    for epoch, beta in ((0., 0.5), (2.5, 0.875), (5., 1.25), (10., 2.), (20., 2.)):
      self.assertAllClose(
          beta, objectives.beta_schedule(tf.constant(epoch), beta=2., anneal_epochs=10.,
                                         start_beta=0.5), rtol=1e-6, atol=0., msg=epoch)

  def test_beta_schedule_constant_without_annealing(self):
    for epoch in (0., 1., 100.):
      self.assertAllClose(0.25, objectives.beta_schedule(tf.constant(epoch), beta=0.25,
                                                        anneal_epochs=0., start_beta=0.),
                          rtol=0., atol=0.)
    # The base config's defaults: beta 1, no annealing.
    self.assertAllClose(1., objectives.beta_schedule(tf.constant(7.)), rtol=0., atol=0.)

  def test_beta_schedule_from_gin(self):
    gin.parse_config(['beta_schedule.beta = 4.', 'beta_schedule.anneal_epochs = 4'])
    self.assertAllClose(1., objectives.beta_schedule(tf.constant(1.)), rtol=1e-6, atol=0.)

  def test_negative_beta_raises(self):
    with self.assertRaisesRegex(ValueError, 'beta'):
      objectives.beta_schedule(0., beta=-0.1)
    with self.assertRaisesRegex(ValueError, 'beta'):
      objectives.beta_schedule(0., beta=1., anneal_epochs=5., start_beta=-1.)


if __name__ == '__main__':
  tf.test.main()
