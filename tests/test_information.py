"""Tests of `statistics.information` against closed forms.

Two models whose every quantity is known exactly:

- a linear-Gaussian VAE, z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_3), with a Gaussian
  encoder e(z|x) = N(A x + c, diag(v)) that is not the exact posterior, so that every gap is
  non-zero (the closed forms are derived in `_LinearGaussian`);
- one latent and four Bernoulli pixels, whose 16 likelihoods come from Gauss-Hermite
  quadrature.

Tolerances are 4.5 standard errors of the estimate (as the estimator reports it, or from
replicas), a two-sided miss probability of about 7e-6 per check for a normal error, plus
any bias that is known to leading order, stated beside each check. Everything is float64.
"""

import types

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo.evaluation import suite
from brokenelbo.models import vae as vae_lib
from brokenelbo.statistics import elbo
from brokenelbo.statistics import information

tfd = tfp.distributions

SIGMAS = 4.5  # Standard errors per tolerance: a normal error misses with probability 7e-6.


class _LinearGaussian:
  """z ~ N(0, I_d), x | z ~ N(W z + b, s^2 I_D), encoder e(z|x) = N(A x + c, diag(v)).

  Closed forms (Sigma_x = W W^T + s^2 I is the covariance of x under the model, which is
  also the data distribution here):
    p(x) = N(x; b, Sigma_x), the model's marginal likelihood g(x).
    Exact posterior p(z|x) = N(A* x + c*, S), S = (I + W^T W / s^2)^-1,
      A* = S W^T / s^2, c* = -A* b (Gaussian conditioning).
    Aggregate posterior under x ~ p(x): z = A x + c + sqrt(v) eps is Gaussian,
      e(z) = N(A b + c, Sigma_e), Sigma_e = A Sigma_x A^T + diag(v), so
      I_e = h(z) - h(z|x) = 1/2 log det Sigma_e - 1/2 sum log v.
    R = E_x KL(N(A x + c, diag v) || N(0, I))
      = 1/2 [sum v + |A b + c|^2 + tr(A Sigma_x A^T) - d - sum log v].
    KL(e(z) || m(z)) = 1/2 [tr Sigma_e + |A b + c|^2 - d - log det Sigma_e] (= R - I_e).
    I_d = 1/2 log det(Sigma_x) - 1/2 log det(s^2 I) = 1/2 log det(I + W^T W / s^2)
      (Sylvester's determinant identity).
    E = E_{m d} [log e(z|x) - log m(z)]: the residual r = z - A x - c
      = (I - A W) z - A eps - (A b + c) has mean mu_r = -(A b + c) and covariance
      C_r = (I - A W)(I - A W)^T + s^2 A A^T, and E|z|^2 = d, so
      E = -1/2 sum log v - 1/2 sum_i (C_r,ii + mu_r,i^2) / v_i + d / 2.
      Cross-check: E = I_d - E_g KL(p(z|x) || e(z|x)) (Barber-Agakov gap).
    G_1 = E_{m d} [log d(x|z) - ELBO(x)] = I_d + E_g KL(e(z|x) || p(z|x)), since
      ELBO(x) = log g(x) - KL(e(z|x) || p(z|x)); G with the exact log g is I_d.
    E_x KL between two Gaussians whose means are affine in x ~ N(b, Sigma_x):
      the usual KL with (m2 - m1)^T P (m2 - m1) averaged to mu^T P mu + tr(P M Sigma_x M^T),
      M the difference of the slopes, mu that of the means at x = b.
  """

  W = np.array([[1.0, 0.3], [-0.5, 0.8], [0.2, -0.6]])
  b = np.array([0.5, -1.0, 0.2])
  s = 0.7

  def __init__(self):
    d, num_pixels = self.W.shape[1], self.W.shape[0]
    self.latent_size = d
    self.sigma_x = self.W @ self.W.T + self.s**2 * np.eye(num_pixels)
    self.posterior_cov = np.linalg.inv(np.eye(d) + self.W.T @ self.W / self.s**2)
    self.a_star = self.posterior_cov @ self.W.T / self.s**2
    self.c_star = -self.a_star @ self.b
    # Not the posterior: a shrunk and perturbed slope, a shifted mean, a diagonal and
    # inflated variance.
    self.a = 0.8 * self.a_star + np.array([[0.0, 0.1, 0.0], [0.05, 0.0, -0.1]])
    self.c = self.c_star + np.array([0.4, -0.3])
    self.v = 1.3 * np.diag(self.posterior_cov)
    self.marginal = tfd.MultivariateNormalDiag(loc=tf.zeros([d], tf.float64))

  def encoder(self, x):
    return tfd.MultivariateNormalDiag(loc=tf.linalg.matvec(self.a, x) + self.c,
                                      scale_diag=tf.constant(np.sqrt(self.v)))

  def inflated_encoder(self, x):
    return tfd.MultivariateNormalDiag(loc=tf.linalg.matvec(self.a, x) + self.c,
                                      scale_diag=tf.constant(np.sqrt(2. * self.v)))

  def posterior(self, x):
    return tfd.MultivariateNormalTriL(loc=tf.linalg.matvec(self.a_star, x) + self.c_star,
                                      scale_tril=np.linalg.cholesky(self.posterior_cov))

  def decoder(self, z):
    return tfd.Independent(tfd.Normal(tf.linalg.matvec(self.W, z) + self.b,
                                      tf.constant(self.s, tf.float64)), 1)

  def sample_data(self, num, seed):
    return np.random.default_rng(seed).multivariate_normal(self.b, self.sigma_x, size=num)

  def log_likelihood(self, x):
    return tfd.MultivariateNormalFullCovariance(self.b, self.sigma_x).log_prob(x).numpy()

  def posterior_kl(self, x):
    """Per-example KL(e(z|x) || p(z|x)) `[N]`."""
    return _gaussian_kl(x @ self.a.T + self.c, np.diag(self.v),
                        x @ self.a_star.T + self.c_star, self.posterior_cov)

  def aggregate(self):
    return self.a @ self.b + self.c, self.a @ self.sigma_x @ self.a.T + np.diag(self.v)

  def mutual_information(self):
    return 0.5 * np.linalg.slogdet(self.aggregate()[1])[1] - 0.5 * np.log(self.v).sum()

  def rate(self):
    mean = self.aggregate()[0]
    return 0.5 * (self.v.sum() + mean @ mean + np.trace(self.a @ self.sigma_x @ self.a.T)
                  - self.latent_size - np.log(self.v).sum())

  def marginal_kl(self):
    mean, cov = self.aggregate()
    return _gaussian_kl(mean, cov, np.zeros(self.latent_size), np.eye(self.latent_size))

  def chi_square(self):
    """chi^2(p(x) e(z|x) || p(x) e(z)) = int p_J^2 / p_P - 1 for the joint J and product P
    Gaussians of (x, z), which share their mean: |P|^1/2 / (|J| |2 J^-1 - P^-1|^1/2) - 1."""
    cross = self.a @ self.sigma_x
    cov_z = self.aggregate()[1]
    joint = np.block([[self.sigma_x, cross.T], [cross, cov_z]])
    product = np.block([[self.sigma_x, np.zeros_like(cross.T)], [np.zeros_like(cross), cov_z]])
    precision = 2. * np.linalg.inv(joint) - np.linalg.inv(product)
    assert np.all(np.linalg.eigvalsh(precision) > 0)  # Else the integral diverges.
    return np.exp(0.5 * np.linalg.slogdet(product)[1] - np.linalg.slogdet(joint)[1]
                  - 0.5 * np.linalg.slogdet(precision)[1]) - 1.

  def generative_information(self):
    return 0.5 * np.linalg.slogdet(np.eye(self.latent_size) + self.W.T @ self.W / self.s**2)[1]

  def expected_kl(self, a1, c1, cov1, a2, c2, cov2):
    """E_{x ~ N(b, Sigma_x)} KL(N(a1 x + c1, cov1) || N(a2 x + c2, cov2))."""
    precision, slope = np.linalg.inv(cov2), a1 - a2
    mean = slope @ self.b + c1 - c2
    return 0.5 * (np.trace(precision @ cov1) + mean @ precision @ mean
                  + np.trace(precision @ slope @ self.sigma_x @ slope.T) - self.latent_size
                  + np.linalg.slogdet(cov2)[1] - np.linalg.slogdet(cov1)[1])

  def lower_bound_e(self):
    residual_slope = np.eye(self.latent_size) - self.a @ self.W
    cov = residual_slope @ residual_slope.T + self.s**2 * self.a @ self.a.T
    mean = -(self.a @ self.b + self.c)
    return (-0.5 * np.log(self.v).sum() - 0.5 * np.sum((np.diag(cov) + mean**2) / self.v)
            + self.latent_size / 2)

  def upper_bound_g1(self):
    return self.generative_information() + self.expected_kl(
        self.a, self.c, np.diag(self.v), self.a_star, self.c_star, self.posterior_cov)


def _gaussian_kl(mean1, cov1, mean2, cov2):
  """KL(N(mean1, cov1) || N(mean2, cov2)); means `[..., d]` broadcast."""
  precision = np.linalg.inv(cov2)
  diff = mean2 - mean1
  return 0.5 * (np.trace(precision @ cov1) + np.einsum('...i,ij,...j->...', diff, precision, diff)
                - len(cov1) + np.linalg.slogdet(cov2)[1] - np.linalg.slogdet(cov1)[1])


@pytest.fixture(scope='module')
def model():
  return _LinearGaussian()


@pytest.fixture(scope='module')
def data(model):
  return model.sample_data(2000, seed=0)


def test_closed_forms_agree_with_each_other(model):
  # Two derivations of E, and R - I_e against the Gaussian KL of the marginal gap.
  barber_agakov = model.generative_information() - model.expected_kl(
      model.a_star, model.c_star, model.posterior_cov, model.a, model.c, np.diag(model.v))
  np.testing.assert_allclose(model.lower_bound_e(), barber_agakov, rtol=1e-12)
  np.testing.assert_allclose(model.rate() - model.mutual_information(), model.marginal_kl(),
                             rtol=1e-12)
  assert model.lower_bound_e() < model.generative_information() < model.upper_bound_g1()


@pytest.fixture(scope='module')
def linear_bound(model, data):
  x = data[:500]
  result = information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, x, seed=1, num_samples=(1, 10, 100, 1000),
      batch_size=250, samples_per_chunk=250)
  return x, result


def test_elbo_matches_its_closed_form_per_example(model, linear_bound):
  x, result = linear_bound
  # L_1(x) - log p(x) has mean -KL(e(z|x) || p(z|x)), known per example: the difference
  # carries only the Monte Carlo noise of the one draw.
  error = result['log_likelihood'][1] - model.log_likelihood(x) + model.posterior_kl(x)
  assert abs(error.mean()) < SIGMAS * error.std(ddof=1) / np.sqrt(len(x))
  np.testing.assert_allclose(result['nll'][1], -result['log_likelihood'][1].mean(), rtol=1e-12)


def test_bound_rises_to_the_log_likelihood(model, linear_bound):
  x, result = linear_bound
  bounds = result['log_likelihood']
  # E[L_K] never falls as K grows (Burda et al. 2016, Theorem 1), and all K share their
  # first draws, so each rise is a paired difference: none may be significantly negative
  # (expected rises about 0.30, 0.04 and 0.002 nats, the last below its noise), and the
  # rise from K = 1 to 1000 (about KL(e || p), 0.35 nats) must be significant.
  for low, high in ((1, 10), (10, 100), (100, 1000)):
    rise = bounds[high] - bounds[low]
    assert rise.mean() > -SIGMAS * rise.std(ddof=1) / np.sqrt(len(x)), (low, high)
  rise = bounds[1000] - bounds[1]
  assert rise.mean() > SIGMAS * rise.std(ddof=1) / np.sqrt(len(x))
  gaps = {k: values - model.log_likelihood(x) for k, values in bounds.items()}
  # At K = 1000: E[L_K] <= log p(x) (Jensen), low by about Var(w) / (2 K) =
  # Var(L_K) / 2 to leading order, which the lower tolerance allows twice over.
  last = gaps[1000]
  stderr = last.std(ddof=1) / np.sqrt(len(x))
  assert -SIGMAS * stderr - last.var() <= last.mean() <= SIGMAS * stderr, (last.mean(), stderr)
  # The reported error is that of the mean over the examples (with their spread of log p(x)).
  np.testing.assert_allclose(result['nll_stderr'][1000],
                             result['log_likelihood'][1000].std(ddof=1) / np.sqrt(len(x)))


def test_exact_posterior_as_proposal_gives_the_log_likelihood_exactly(model, data):
  # With q = p(z|x) every weight d(x|z) m(z) / q(z|x) equals p(x): L_K = log p(x) for every
  # draw, to float64 rounding.
  x = data[:50]
  result = information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, x, seed=2, num_samples=(1, 7),
      proposal=model.posterior)
  for k in (1, 7):
    np.testing.assert_allclose(result['log_likelihood'][k], model.log_likelihood(x),
                               rtol=0, atol=1e-10)


def test_inflated_proposal_converges_to_the_same_likelihood(model, data):
  # A proposal with twice the encoder's variance (as Yacoby et al. evaluate) is another
  # unbiased estimator of p(x): at K = 1000 it agrees with log p(x) as above.
  x = data[:200]
  result = information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, x, seed=3, num_samples=1000,
      proposal=model.inflated_encoder, samples_per_chunk=500)
  gap = result['log_likelihood'][1000] - model.log_likelihood(x)
  stderr = gap.std(ddof=1) / np.sqrt(len(x))
  assert -SIGMAS * stderr - gap.var() <= gap.mean() <= SIGMAS * stderr, (gap.mean(), stderr)


def test_one_sample_bound_is_the_elbo_of_elbo_make_evaluate(model, data):
  # The same seed and batch size draw the same z as `elbo.make_evaluate` (which runs in
  # float32 through `pipeline.make_dataset`): NLL_1 = -ELBO to float32 rounding.
  a, c, w, b = (tf.constant(t, tf.float32) for t in (model.a, model.c, model.W, model.b))
  scale = tf.constant(np.sqrt(model.v), tf.float32)

  def encoder(x):  # The float32 copy of the model, as parts of a `vae.VAE`.
    return tfd.MultivariateNormalDiag(tf.linalg.matvec(a, x) + c, scale)

  def decoder(z):
    return tfd.Independent(tfd.Normal(tf.linalg.matvec(w, z) + b, model.s), 1)

  marginal = tfd.MultivariateNormalDiag(loc=tf.zeros([2]))
  vae = vae_lib.VAE(encoder=lambda latent_size: encoder, decoder=lambda: decoder,
                    marginal=lambda latent_size: lambda encoder: marginal, latent_size=2)
  x = data[:64].astype(np.float32)
  expected = elbo.make_evaluate(vae, batch_size=32, seed=5)(x)['elbo']
  result = information.importance_weighted_bound(encoder, decoder, marginal, x, seed=5,
                                                 num_samples=1, batch_size=32)
  np.testing.assert_allclose(result['nll'][1], -expected, rtol=1e-5)


def test_mutual_information_rate_and_marginal_gap(model, data):
  result = information.mutual_information(model.encoder, model.marginal, data, seed=4,
                                          encoders_per_chunk=1000, latents_per_chunk=1000)
  n = len(data)
  assert result['num_examples'] == n
  np.testing.assert_allclose(result['log_num_examples'], np.log(n))
  # Each term log e(z|x_n) - log((1/N) sum_m e(z|x_m)) is at most log N.
  assert result['mutual_information'] <= np.log(n)
  # With N examples the estimate is InfoNCE with the encoder as critic: low in expectation
  # (never high), by chi^2 / (2N) to leading order, chi^2 = chi^2(p(x, z) || p(x) p(z))
  # (a second-order expansion of the log of the mean over the other examples, whose
  # excess variance and the self-term give +chi^2 / (2N) and -chi^2 / N). The lower
  # tolerance allows twice that (chi^2 is about 4 here: 0.002 nats).
  bias = model.chi_square() / n
  checks = dict(mutual_information=(model.mutual_information(), bias, 0.),
                rate=(model.rate(), 0., 0.),  # Unbiased: a plain average.
                marginal_kl=(model.marginal_kl(), 0., bias))  # R - I_e: high by as much.
  for name, (expected, low, high) in checks.items():
    tolerance = SIGMAS * result[f'{name}_stderr']
    assert expected - low - tolerance <= result[name] <= expected + high + tolerance, (
        name, result[name], expected, tolerance)
  np.testing.assert_allclose(result['marginal_kl'],
                             result['rate'] - result['mutual_information'], rtol=1e-10)


@pytest.fixture(scope='module')
def bounds(model):
  return information.generative_bounds(model.encoder, model.decoder, model.marginal,
                                       num_examples=2000, seed=6, num_samples=(1, 10, 1000),
                                       batch_size=500, samples_per_chunk=500)


def test_generative_lower_bound_e(model, bounds):
  expected = model.lower_bound_e()
  assert abs(bounds['e'] - expected) <= SIGMAS * bounds['e_stderr'], (bounds['e'], expected)
  assert bounds['num_examples'] == 2000


def test_generative_upper_bound_g_falls_to_the_information(model, bounds):
  g, stderr = bounds['g'], bounds['g_stderr']
  # K = 1: G_1 = I_d + E_g KL(e(z|x) || p(z|x)), unbiased.
  assert abs(g[1] - model.upper_bound_g1()) <= SIGMAS * stderr[1], (g[1], model.upper_bound_g1())
  # G_K falls with K towards I_d. The K share their draws, so the steps are paired
  # differences: about 0.30 and 0.04 nats, against a noise of about 0.02 and 0.005 (the
  # spread of L_10 - L_1 and L_1000 - L_10 over sqrt(2000)). At K = 1000 G_K is above I_d
  # by about E Var(L_K) / 2, under a thousandth of a nat, within the noise of the average.
  assert g[1] > g[10] > g[1000], g
  information_d = model.generative_information()
  assert abs(g[1000] - information_d) <= SIGMAS * stderr[1000], (g[1000], information_d)
  assert bounds['e'] < information_d < g[1000] + SIGMAS * stderr[1000]


def test_the_suite_takes_examples_spread_through_the_split(model, data):
  # A class-sorted split's first examples are one class: the suite must take every
  # stride-th example instead, and say which. Its numbers are then exactly those of the
  # estimators on that subset, with the suite's seeds.
  parts = types.SimpleNamespace(encoder=model.encoder, decoder=model.decoder,
                                marginal_distribution=lambda: model.marginal)
  split = data[:40]
  result = suite.information_suite(parts, split, seed=3, num_samples=(1, 2),
                                   likelihood_examples=4, information_examples=5,
                                   generative_examples=2, batch_size=4)
  assert (result['likelihood_stride'], result['information_stride']) == (10, 8)
  assert (result['likelihood_examples'], result['information_examples']) == (4, 5)
  bound = information.importance_weighted_bound(model.encoder, model.decoder, model.marginal,
                                                split[::10], seed=3, num_samples=(1, 2),
                                                batch_size=4)
  for k in (1, 2):
    assert result[f'nll_k{k}'] == bound['nll'][k]
  mutual = information.mutual_information(model.encoder, model.marginal, split[::8],
                                          tf.constant([3, 1], tf.int32), batch_size=4)
  assert result['mutual_information'] == mutual['mutual_information']
  # Fewer examples than asked for: all of them.
  assert suite.information_suite(parts, split[:3], seed=3, num_samples=(1,),
                                 likelihood_examples=4, information_examples=5,
                                 generative_examples=2)['likelihood_stride'] == 1


class _Bernoulli:
  """z ~ N(0, 1), x_i | z ~ Bernoulli(sigmoid(a_i z + b_i)), four pixels."""

  a = np.array([2.0, -1.5, 1.0, 0.5])
  b = np.array([0.3, -0.2, 0.0, 1.0])

  marginal = tfd.MultivariateNormalDiag(loc=tf.zeros([1], tf.float64))

  def decoder(self, z):
    return tfd.Independent(tfd.Bernoulli(logits=z * self.a + self.b, dtype=tf.float64), 1)

  def encoder(self, x):
    # Roughly the posterior mean, and a scale (1.2) wider than the prior's, so that the
    # weights m(z) d(x|z) / e(z|x) <= m(z) / e(z|x) are bounded.
    loc = 0.4 * tf.reduce_sum((x - 0.5) * self.a, axis=-1, keepdims=True)
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.constant([1.2], tf.float64))

  def log_likelihood(self, x):
    """log p(x) by 200-point Gauss-Hermite quadrature (probabilists' weight e^{-z^2/2})."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(200)
    logits = nodes[:, None, None] * self.a + self.b  # [nodes, 1, pixels]
    log_d = np.sum(x * logits - np.logaddexp(0., logits), axis=-1)  # [nodes, images]
    return np.log(np.sum(weights[:, None] * np.exp(log_d), axis=0) / np.sqrt(2. * np.pi))


def test_bernoulli_likelihoods_of_all_16_images():
  model = _Bernoulli()
  images = np.array([[(i >> j) & 1 for j in range(4)] for i in range(16)], np.float64)
  exact = model.log_likelihood(images)
  np.testing.assert_allclose(np.sum(np.exp(exact)), 1., rtol=1e-12)  # The quadrature.
  # Each image 64 times, with independent draws: its own standard error, from enough
  # replicas that the skew of L_K and the noise of the estimated error stay small.
  replicas = 64
  result = information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, np.repeat(images, replicas, axis=0),
      seed=7, num_samples=1000, batch_size=256, samples_per_chunk=500)
  estimates = result['log_likelihood'][1000].reshape([16, replicas])
  mean, variance = estimates.mean(axis=1), estimates.var(axis=1, ddof=1)
  stderr = np.sqrt(variance / replicas)
  # Low by about Var(L_K) / 2 in expectation (Jensen, to leading order): allowed twice.
  assert np.all(exact - SIGMAS * stderr - variance <= mean), (mean - exact) / stderr
  assert np.all(mean <= exact + SIGMAS * stderr), (mean - exact) / stderr


def test_active_units_with_an_analytic_mean():
  # The mean is [x.w, 0.001 x.w, 0.5]: variances Var(x.w) (about 1), 1e-6 of that, and 0.
  x = np.random.default_rng(8).normal(size=[300, 5])
  w = np.array([0.5, -0.4, 0.3, 0.6, -0.2])
  means = np.stack([x @ w, 1e-3 * x @ w, np.full(300, 0.5)], axis=1)

  def encoder(x):
    u = tf.linalg.matvec(tf.constant(w[None]), x)
    loc = tf.concat([u, 1e-3 * u, tf.fill(tf.shape(u), tf.constant(0.5, tf.float64))], axis=1)
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.constant([0.3] * 3, tf.float64))

  result = information.active_units(encoder, x, batch_size=70)
  assert result['analytic_mean'] and result['active_units'] == 1
  # Chunked variances equal the whole-set ones (divided by N) to float rounding.
  np.testing.assert_allclose(result['variances'], means.var(axis=0), rtol=1e-10, atol=1e-15)
  assert information.active_units(encoder, x, threshold=1e-8)['active_units'] == 2


def test_active_units_from_samples_without_an_analytic_mean():
  # e(z|x) = sinh of N(loc(x), 0.3^2) has no analytic mean in TFP; its mean is
  # sinh(loc) exp(0.3^2 / 2), so Var_x E[z_i|x] = exp(0.09) Var_x sinh(loc_i).
  x = np.random.default_rng(9).normal(size=[200, 5])
  w = np.array([0.5, -0.4, 0.3, 0.6, -0.2])
  scale = 0.3

  def encoder(x):
    u = tf.linalg.matvec(tf.constant(w[None]), x)
    loc = tf.concat([u, 1e-3 * u, tf.fill(tf.shape(u), tf.constant(0.5, tf.float64))], axis=1)
    return tfd.TransformedDistribution(
        tfd.MultivariateNormalDiag(loc, tf.constant([scale] * 3, tf.float64)),
        tfp.bijectors.Sinh())

  loc = np.stack([x @ w, 1e-3 * x @ w, np.full(200, 0.5)], axis=1)
  expected = np.var(np.sinh(loc) * np.exp(scale**2 / 2), axis=0)
  num_samples = 200
  result = information.active_units(encoder, x, num_samples=num_samples, seed=10)
  assert not result['analytic_mean'] and result['active_units'] == 1
  # The corrected estimate is unbiased; its noise is that of the variance of a mean of
  # S draws per example: sd about 2 sqrt(mean((m - m_bar)^2 Var(z|x)) / (S N)), plus
  # sqrt(2 / N) mean(Var(z|x)) / S for the subtracted noise, with
  # Var(z|x) = Var sinh(u) = (exp(s^2) - 1) (exp(s^2) cosh(2 loc) + 1) / 2.
  noise = (np.exp(scale**2) - 1.) * (np.exp(scale**2) * np.cosh(2. * loc) + 1.) / 2.
  centred = np.sinh(loc) * np.exp(scale**2 / 2) - np.sinh(loc).mean(0) * np.exp(scale**2 / 2)
  sd = (2. * np.sqrt(np.mean(centred**2 * noise, axis=0) / (num_samples * len(x)))
        + np.sqrt(2. / len(x)) * noise.mean(axis=0) / num_samples)
  np.testing.assert_array_less(np.abs(result['variances'] - expected), SIGMAS * sd)


def test_chunk_sizes_change_nothing(model, data):
  x = data[:30]
  bounds = [information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, x, seed=11, num_samples=(1, 5, 12),
      batch_size=16, samples_per_chunk=chunk)['log_likelihood'] for chunk in (1, 4, 100)]
  for other in bounds[1:]:
    for k in (1, 5, 12):
      np.testing.assert_allclose(other[k], bounds[0][k], rtol=1e-12)
  # Draw k does not depend on how many follow: K = 5 alone is the K = 5 of (1, 5, 12).
  alone = information.importance_weighted_bound(
      model.encoder, model.decoder, model.marginal, x, seed=11, num_samples=5,
      batch_size=16)['log_likelihood'][5]
  np.testing.assert_allclose(alone, bounds[0][5], rtol=1e-12)
  informations = [information.mutual_information(
      model.encoder, model.marginal, x, seed=12, num_samples=3, batch_size=16,
      encoders_per_chunk=encoders, latents_per_chunk=latents)
                  for encoders, latents in ((30, 90), (7, 11), (1, 1))]
  for other in informations[1:]:
    for name in ('mutual_information', 'rate', 'marginal_kl', 'mutual_information_stderr'):
      np.testing.assert_allclose(other[name], informations[0][name], rtol=1e-12)
  generative = [information.generative_bounds(
      model.encoder, model.decoder, model.marginal, num_examples=30, seed=13,
      num_samples=(1, 6), batch_size=16, samples_per_chunk=chunk) for chunk in (2, 50)]
  assert generative[0]['e'] == generative[1]['e']
  np.testing.assert_allclose(generative[1]['g'][6], generative[0]['g'][6], rtol=1e-12)


def test_mutual_information_stays_below_log_n_when_the_encoder_rounds_by_batch():
  # A nearly deterministic encoder whose mean moves by 1e-3 with the batch it is computed
  # in (as a network's matmuls round differently at other batch sizes), at scale 1e-4:
  # the own example's density at its draw then differs by about 50 nats between the
  # drawing batches of 5 and the chunks of 7 of the aggregate. Each term of I_e must still
  # be at most log N, as the numerator's own density is the aggregate's own term.
  def encoder(x):
    x = tf.convert_to_tensor(x, tf.float32)
    wobble = 1e-3 * tf.cast(tf.shape(x)[0], tf.float32)
    return tfd.MultivariateNormalDiag(loc=x + wobble, scale_diag=tf.fill(tf.shape(x), 1e-4))

  x = np.linspace(-3., 3., 20, dtype=np.float32)[:, np.newaxis]
  marginal = tfd.MultivariateNormalDiag(loc=[0.], scale_diag=[1.])
  result = information.mutual_information(encoder, marginal, x, seed=3, num_samples=2,
                                          batch_size=5, encoders_per_chunk=7)
  # The examples are 0.3 apart, 3000 encoder scales: e(z) is the own term over N exactly.
  np.testing.assert_allclose(result['mutual_information'], np.log(20), rtol=0, atol=1e-9)
  assert result['mutual_information'] <= np.log(20)
