"""Tests of `statistics.henze_zirkler`: against pingouin, its null law, and its gradients."""

import numpy as np
import pytest
import tensorflow as tf

from brokenelbo.statistics import henze_zirkler as hz_lib


def _samples():
  """A few samples, Gaussian and not, with non-trivial location, scale and correlation."""
  rng = np.random.default_rng(0)
  mixing = rng.normal(size=(3, 3))
  return [
      rng.normal(size=(50, 2)),
      rng.normal(size=(120, 3)) @ mixing + [3., -1., 0.5],
      rng.exponential(size=(80, 3)),
      rng.uniform(-1., 1., size=(60, 4)),
      rng.standard_t(3., size=(40, 2)) @ mixing[:2, :2],
  ]


def _circle(n, seed):
  angle = np.random.default_rng(seed).uniform(0., 2. * np.pi, n)
  return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_matches_pingouin(dtype):
  pingouin = pytest.importorskip(
      'pingouin', reason='pingouin (test-only dependency) is the reference implementation')
  for x in _samples():
    x = x.astype(dtype)
    expected = pingouin.multivariate_normality(x.astype(np.float64))
    hz = hz_lib.henze_zirkler(tf.constant(x)).numpy()
    assert hz.dtype == dtype
    np.testing.assert_allclose(hz, expected.hz, rtol=1e-4)
    np.testing.assert_allclose(hz_lib.henze_zirkler_pvalue(hz, *x.shape), expected.pval,
                               rtol=1e-3, atol=1e-12)


def test_smoothing_parameter():
  n, d = 100, 2
  assert hz_lib.smoothing_parameter(n, d) == pytest.approx(
      (1. / np.sqrt(2.)) * ((2 * d + 1) * n / 4.) ** (1. / (d + 4)))


def test_gaussian_samples_follow_the_null():
  n, d, replicas = 100, 2, 400
  z = np.random.default_rng(1).normal(size=(replicas, n, d))
  hz = hz_lib.henze_zirkler(tf.constant(z)).numpy()
  null = hz_lib.henze_zirkler_null(n, d)
  stderr = np.sqrt(null['variance'] / replicas)
  assert abs(hz.mean() - null['mean']) < 4.5 * stderr
  assert hz.var() == pytest.approx(null['variance'], rel=0.3)
  # The log-normal moments reproduce the null moments.
  assert np.exp(null['log_mean'] + null['log_std'] ** 2 / 2.) == pytest.approx(null['mean'])
  # Under the null about 5% of p-values fall below 0.05 (binomial sd 1.1%).
  assert abs(np.mean(hz_lib.henze_zirkler_pvalue(hz, n, d) < 0.05) - 0.05) < 0.05


def test_large_for_a_circle():
  n, d = 200, 2
  hz = hz_lib.henze_zirkler(tf.constant(_circle(n, seed=2), tf.float32)).numpy()
  null = hz_lib.henze_zirkler_null(n, d)
  assert hz > null['mean'] + 20. * np.sqrt(null['variance'])
  assert hz_lib.henze_zirkler_pvalue(hz, n, d) < 1e-10


def test_affine_invariant():
  x = _samples()[2]
  a = np.array([[2., 0.3, 0.], [0., 0.5, 0.1], [0.2, 0., 1.]])
  np.testing.assert_allclose(hz_lib.henze_zirkler(tf.constant(x @ a + 7.)).numpy(),
                             hz_lib.henze_zirkler(tf.constant(x)).numpy(), rtol=1e-9)


def test_gradient_matches_finite_difference():
  x = np.random.default_rng(3).exponential(size=(20, 2))
  z = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(z)
    hz = hz_lib.henze_zirkler(z)
  grad = tape.gradient(hz, z).numpy()
  direction = np.random.default_rng(4).normal(size=x.shape)
  h = 1e-6
  fd = (hz_lib.henze_zirkler(tf.constant(x + h * direction))
        - hz_lib.henze_zirkler(tf.constant(x - h * direction))).numpy() / (2. * h)
  assert np.sum(grad * direction) == pytest.approx(fd, rel=1e-6)


@pytest.mark.parametrize('case', ['duplicates', 'all_equal', 'collinear'])
def test_gradient_finite_when_points_coincide(case):
  rng = np.random.default_rng(5)
  x = rng.normal(size=(30, 3)).astype(np.float32)
  if case == 'duplicates':
    x[10:20] = x[0]
  elif case == 'all_equal':
    x[:] = x[0]
  else:
    x = np.outer(rng.normal(size=30), [1., 2., -1.]).astype(np.float32)
  z = tf.constant(x)
  with tf.GradientTape() as tape:
    tape.watch(z)
    hz = hz_lib.henze_zirkler(z)
  assert np.isfinite(hz.numpy())
  assert np.all(np.isfinite(tape.gradient(hz, z).numpy()))


def test_batched_equals_per_slice():
  z = np.random.default_rng(6).exponential(size=(3, 2, 25, 2)).astype(np.float32)
  batched = hz_lib.henze_zirkler(tf.constant(z)).numpy()
  assert batched.shape == (3, 2)
  for i in range(3):
    for j in range(2):
      np.testing.assert_allclose(batched[i, j], hz_lib.henze_zirkler(tf.constant(z[i, j])),
                                 rtol=1e-5)


def _plain_pair_term(whitened, beta2, n):
  """The pair term of HZ as its formula reads, differentiated by autodiff."""
  d_jk = tf.reduce_sum(tf.square(whitened[..., :, None, :] - whitened[..., None, :, :]), -1)
  return tf.reduce_sum(tf.exp(-beta2 / 2. * d_jk), axis=[-2, -1]) / n


@pytest.mark.parametrize('compiled', [False, True])
def test_pair_term_gradient_in_closed_form_equals_autodiff(compiled):
  # Batched [2, 3, N, 2], with weights on the slices, eagerly and under XLA.
  w = tf.constant(np.random.default_rng(7).normal(size=(2, 3, 40, 2)))
  weights = tf.constant(np.arange(1., 7.).reshape(2, 3))
  beta2 = hz_lib.smoothing_parameter(40, 2) ** 2

  def value_and_gradient(pair_term, w):
    with tf.GradientTape() as tape:
      tape.watch(w)
      value = pair_term(w, beta2, 40.)
      total = tf.reduce_sum(weights * value)
    return value, tape.gradient(total, w)

  call = (tf.function(value_and_gradient, jit_compile=True, autograph=False) if compiled
          else value_and_gradient)
  value, gradient = call(hz_lib._pair_term, w)  # pylint: disable=protected-access
  expected_value, expected_gradient = value_and_gradient(_plain_pair_term, w)
  np.testing.assert_allclose(value, expected_value, rtol=1e-12)
  np.testing.assert_allclose(gradient, expected_gradient, rtol=1e-10, atol=1e-13)
  assert np.max(np.abs(expected_gradient)) > 0.01  # Not trivially zero.
