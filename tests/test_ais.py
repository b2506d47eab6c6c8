"""Tests of `statistics.ais` against closed forms and quadrature.

Two models whose whole rate-distortion curve is known:

- linear-Gaussian, z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_5), in float64: p_beta(z|x) is
  Gaussian and log Z_beta, D_beta, R_beta are closed forms (derived in `_LinearGaussian`);
- one latent and twelve Bernoulli pixels with logits a z + c, in float32 like the package's
  decoders: log Z_beta, D_beta and R_beta by quadrature on a fine grid in z.

An AIS estimate passes when it is within SIGMAS of its own standard errors (as
`ais.summarize` reports them, over the chains) plus `ALLOWANCE`: AIS's log Z is low in
expectation by an amount that falls with the number of intermediate distributions, which
the chains' spread does not measure. The evaluation layer's `rd_curve.rd_curve_suite` is
checked on the Bernoulli model as a VAE.
"""

import gin
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import errors
from brokenelbo.evaluation import rd_curve
from brokenelbo.statistics import ais

tfd = tfp.distributions

SIGMAS = 4.5  # Standard errors per tolerance: a normal error misses with probability 7e-6.
# HMC settings of the tests: 64 chains, as the chains' spread with fewer misses the heavy
# tails of the weights and distortions too often to be a tolerance; short trajectories.
SAMPLER = dict(num_chains=64, num_leapfrog_steps=10)
# Bias allowance (nats) at 300 distributions: the mean |error| of log Z over 8 images was
# at most 0.105 nats in 6 runs of 64 chains on the linear model (at most 0.036 on the
# Bernoulli one), where the worst error over all betas and quantities was 0.99 of the
# tolerance with a 0.05 allowance.
ALLOWANCE = dict(log_normalizer=.1, distortion=.1, rate=.1)


class _LinearGaussian:
  """z ~ N(0, I_k), x | z ~ N(W z + b, s^2 I_n).

  With y = x - b and d(x|z)^beta = (2 pi s^2)^(-n beta / 2) exp(-beta |y - W z|^2 / (2 s^2)),
  the tempered posterior p_beta(z|x) ~ N(z; 0, I) d(x|z)^beta is Gaussian with precision
  A = I + beta W^T W / s^2 and mean mu = A^-1 beta W^T y / s^2 (complete the square), and

    log Z_beta = -(n beta / 2) log(2 pi s^2) - 1/2 log det A + 1/2 mu^T A mu
                 - beta |y|^2 / (2 s^2)
    D_beta     = (n / 2) log(2 pi s^2) + (|y - W mu|^2 + tr(W A^-1 W^T)) / (2 s^2)
    R_beta     = -log Z_beta - beta D_beta.

  `test_linear_gaussian_closed_form` checks these against three independent facts: log Z_1
  is log N(x; b, W W^T + s^2 I), R_beta is KL(N(mu, A^-1) || N(0, I)), and
  d log Z_beta / d beta = -D_beta.
  """

  W = np.array([[1.0, 0.3], [-0.5, 0.8], [0.2, -0.6], [0.7, 0.9], [-1.1, 0.4]])
  b = np.array([0.5, -1.0, 0.2, 0.0, 0.3])
  s = 0.3

  def __init__(self):
    self.marginal = tfd.MultivariateNormalDiag(loc=tf.zeros([2], tf.float64))

  def decoder(self, z):
    return tfd.MultivariateNormalDiag(loc=tf.linalg.matvec(self.W, z) + self.b,
                                      scale_diag=tf.fill([5], tf.constant(self.s, tf.float64)))

  def tempered(self, x, beta):
    """The precision A and mean mu of p_beta(z|x)."""
    precision = np.eye(2) + beta * self.W.T @ self.W / self.s**2
    return precision, np.linalg.solve(precision, beta * self.W.T @ (x - self.b) / self.s**2)

  def exact(self, images, beta):
    """log Z_beta, D_beta, R_beta `[N]` in closed form."""
    n, variance = self.W.shape[0], self.s**2
    log_z, distortion = [], []
    for x in images:
      y = x - self.b
      precision, mean = self.tempered(x, beta)
      log_z.append(-n * beta / 2 * np.log(2 * np.pi * variance)
                   - np.linalg.slogdet(precision)[1] / 2 + mean @ precision @ mean / 2
                   - beta * y @ y / (2 * variance))
      residual = y - self.W @ mean
      spread = np.trace(self.W @ np.linalg.inv(precision) @ self.W.T)
      distortion.append(n / 2 * np.log(2 * np.pi * variance)
                        + (residual @ residual + spread) / (2 * variance))
    log_z, distortion = np.array(log_z), np.array(distortion)
    return log_z, distortion, -log_z - beta * distortion


class _Bernoulli:
  """z ~ N(0, 1), x | z ~ prod_i Bernoulli(x_i; sigmoid(a_i z + c_i)), twelve pixels.

  Exact values by quadrature on 40001 points of z in [-10, 10] (the tempered posteriors'
  standard deviations here are at least 0.1, so the grid resolves each by 200 points, and
  m(z) beyond 10 is below e^-50): with f(z) = m(z) d(x|z)^beta,

    log Z_beta = log sum_j f(z_j) dz,   D_beta = sum_j f(z_j) [-log d(x|z_j)] / sum_j f(z_j).
  """

  a = np.array([1.5, -2.0, 0.8, 2.5, -1.2, 0.3, 1.9, -0.7, 2.2, -1.6, 1.0, -2.4])
  c = np.array([0.2, -0.5, 0.1, 0.4, -0.3, 0.6, -0.1, 0.3, -0.6, 0.2, 0.5, -0.2])
  grid = np.linspace(-10., 10., 40001)

  def __init__(self):
    self.marginal = tfd.MultivariateNormalDiag(loc=tf.zeros([1]))

  def decoder(self, z):
    logits = z * tf.constant(self.a, tf.float32) + tf.constant(self.c, tf.float32)
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32),
                           reinterpreted_batch_ndims=1)

  def exact(self, images, beta):
    """log Z_beta, D_beta, R_beta `[N]` by quadrature."""
    logits = self.grid[:, np.newaxis] * self.a + self.c
    log_d = (np.asarray(images, np.float64) @ -np.logaddexp(0., -logits).T
             + (1. - np.asarray(images, np.float64)) @ -np.logaddexp(0., logits).T)
    log_f = -self.grid**2 / 2 - np.log(2 * np.pi) / 2 + beta * log_d
    peak = log_f.max(axis=1, keepdims=True)
    weights = np.exp(log_f - peak)
    log_z = peak[:, 0] + np.log(weights.sum(axis=1) * (self.grid[1] - self.grid[0]))
    distortion = (weights * -log_d).sum(axis=1) / weights.sum(axis=1)
    return log_z, distortion, -log_z - beta * distortion


class _BernoulliVAE(_Bernoulli):
  """The Bernoulli model as a VAE, with a Gaussian encoder that ignores x: what
  `rd_curve.rd_curve_suite` takes."""

  def encoder(self, x):
    loc = tf.fill([tf.shape(x)[0], 1], 0.3)  # One distribution per example, as the VAE's.
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=tf.fill(tf.shape(loc), 0.5))

  def marginal_distribution(self):
    return self.marginal

  def rate_distortion(self, x, seed):
    z, log_e = self.encoder(x).experimental_sample_and_log_prob(seed=seed)
    return log_e - self.marginal.log_prob(z), -self.decoder(z).log_prob(x)


def _assert_curve(result, model, images, allowances):
  """Each of log Z, D, R at each stored beta within SIGMAS standard errors plus its
  allowance (nats) of the model's exact value."""
  for i, beta in enumerate(result['betas']):
    exact = dict(zip(('log_normalizer', 'distortion', 'rate'), model.exact(images, beta)))
    for name, value in exact.items():
      error = np.abs(result[name][i] - value)
      tolerance = SIGMAS * result[f'{name}_stderr'][i] + allowances[name]
      assert np.all(error <= tolerance), (name, beta, error, tolerance)


@pytest.fixture(scope='module')
def linear():
  model = _LinearGaussian()
  images, latents = ais.simulate(model.decoder, model.marginal, 4, seed=1)
  return model, images, latents


@pytest.fixture(scope='module')
def linear_curve(linear):
  model, images, _ = linear
  return ais.rate_distortion_curve(model.decoder, model.marginal, images, seed=0,
                                   betas=(0.1, 0.5, 1., 3.), num_steps=300, **SAMPLER)


@pytest.fixture(scope='module')
def bernoulli():
  model = _Bernoulli()
  images, latents = ais.simulate(model.decoder, model.marginal, 8, seed=2)
  return model, images, latents


def test_sigmoid_schedule():
  schedule = ais.sigmoid_schedule(8, max_beta=2., radius=4.)
  s = 1. / (1. + np.exp(-4. * np.linspace(-1., 1., 9)))
  np.testing.assert_allclose(schedule, 2. * (s - s[0]) / (s[-1] - s[0]), rtol=1e-12)
  assert schedule[0] == 0. and schedule[-1] == 2. and np.all(np.diff(schedule) > 0)
  # Symmetric about its middle: as dense near max_beta as near 0.
  np.testing.assert_allclose(schedule + schedule[::-1], 2., rtol=1e-12)


def test_annealing_schedule_stores_betas_and_one():
  schedule, stored = ais.annealing_schedule(10, betas=(0.3, 5.), radius=4.)
  np.testing.assert_array_equal(schedule[stored], [0.3, 1., 5.])
  assert schedule[0] == 0. and schedule[-1] == 5. and np.all(np.diff(schedule) > 0)
  assert schedule.size == 11 + 2  # The sigmoid schedule's 11 betas, and 0.3 and 1.
  # Below 1, 1 is still stored, and it is the largest.
  schedule, stored = ais.annealing_schedule(4, betas=(0.5,))
  np.testing.assert_array_equal(schedule[stored], [0.5, 1.])
  with pytest.raises(ValueError):
    ais.annealing_schedule(4, betas=(0., 1.))


def test_summarize_by_hand():
  # Two chains with weights 1 and 3 at beta = 2: u = (0.5, 1.5), log Z = log 2; their
  # distortions 1 and 3 give D = (0.5 * 1 + 1.5 * 3) / 2 = 2.5 and R = -log 2 - 5.
  result = ais.summarize(np.log([[[1.], [3.]]]), -np.array([[[1.], [3.]]]), [2.])
  np.testing.assert_allclose(result['log_normalizer'], [[np.log(2.)]], rtol=1e-12)
  np.testing.assert_allclose(result['distortion'], [[2.5]], rtol=1e-12)
  np.testing.assert_allclose(result['rate'], [[-np.log(2.) - 5.]], rtol=1e-12)
  # Standard errors sqrt(sum t^2 / (C (C - 1))) with C = 2: t(log Z) = (-0.5, 0.5),
  # t(D) = (0.5 * -1.5, 1.5 * 0.5), t(R) = -t(log Z) - 2 t(D) = (2, -2).
  np.testing.assert_allclose(result['log_normalizer_stderr'], [[0.5]], rtol=1e-12)
  np.testing.assert_allclose(result['distortion_stderr'], [[0.75]], rtol=1e-12)
  np.testing.assert_allclose(result['rate_stderr'], [[2.]], rtol=1e-12)
  np.testing.assert_allclose(result['effective_chains'], [[4. / 2.5]], rtol=1e-12)


def test_linear_gaussian_closed_form(linear):
  model, images, _ = linear
  covariance = model.W @ model.W.T + model.s**2 * np.eye(5)
  log_z, _, _ = model.exact(images, 1.)
  evidence = tfd.MultivariateNormalTriL(model.b, np.linalg.cholesky(covariance)).log_prob(images)
  np.testing.assert_allclose(log_z, evidence.numpy(), rtol=1e-10)
  for beta in (0.1, 1., 3.):
    log_z, distortion, rate = model.exact(images, beta)
    for x, r in zip(images, rate):
      precision, mean = model.tempered(x, beta)
      kl = (np.trace(np.linalg.inv(precision)) + mean @ mean - 2
            + np.linalg.slogdet(precision)[1]) / 2
      np.testing.assert_allclose(r, kl, rtol=1e-10)
    step = 1e-5
    slope = (model.exact(images, beta + step)[0] - model.exact(images, beta - step)[0]) / (2 * step)
    np.testing.assert_allclose(slope, -distortion, rtol=1e-6)


def test_linear_gaussian_curve(linear, linear_curve):
  model, images, _ = linear
  np.testing.assert_array_equal(linear_curve['betas'], [0.1, 0.5, 1., 3.])
  _assert_curve(linear_curve, model, images, ALLOWANCE)
  # log Z_1 is log p(x) = log N(x; b, W W^T + s^2 I), and `log_likelihood` is that row.
  np.testing.assert_array_equal(linear_curve['log_likelihood'], linear_curve['log_normalizer'][2])
  evidence = model.exact(images, 1.)[0]
  assert np.all(np.abs(linear_curve['log_likelihood'] - evidence)
                <= SIGMAS * linear_curve['log_likelihood_stderr'] + ALLOWANCE['log_normalizer'])
  # The step sizes settled where the weighted chains accept about 0.65 of proposals.
  assert 0.5 < linear_curve['acceptance'][-100:].mean() < 0.8


def test_linear_gaussian_error_falls_with_distributions(linear, linear_curve):
  model, images, _ = linear
  few = ais.rate_distortion_curve(model.decoder, model.marginal, images, seed=0,
                                  betas=(0.1, 0.5, 1., 3.), num_steps=10, **SAMPLER)
  exact = np.stack([model.exact(images, beta)[0] for beta in few['betas']])
  error_few = np.abs(few['log_normalizer'] - exact).mean()
  error_many = np.abs(linear_curve['log_normalizer'] - exact).mean()
  # Measured: 0.33 nats at 10 distributions against 0.08 at 300.
  assert error_many < error_few / 3, (error_few, error_many)


def test_bernoulli_curve(bernoulli):
  model, images, _ = bernoulli
  result = ais.rate_distortion_curve(model.decoder, model.marginal, images, seed=3,
                                     betas=(0.2, 1., 3.), num_steps=300, **SAMPLER)
  _assert_curve(result, model, images, ALLOWANCE)


def test_frozen_step_sizes(bernoulli):
  model, images, _ = bernoulli
  tuned = ais.rate_distortion_curve(model.decoder, model.marginal, images[:4], seed=4,
                                    betas=(1.,), num_steps=100, **SAMPLER)
  frozen = ais.rate_distortion_curve(model.decoder, model.marginal, images[:4], seed=5,
                                     betas=(1.,), num_steps=100,
                                     step_sizes=tuned['step_sizes'], **SAMPLER)
  np.testing.assert_array_equal(frozen['step_sizes'], tuned['step_sizes'].astype(np.float32))
  _assert_curve(frozen, model, images[:4], ALLOWANCE)


@pytest.mark.parametrize('name, steps', [('linear', (10, 300)), ('bernoulli', (100,))])
def test_bidirectional_bounds_bracket_and_close(name, steps):
  model = dict(linear=_LinearGaussian, bernoulli=_Bernoulli)[name]()
  images, latents = ais.simulate(model.decoder, model.marginal, 32, seed=7)
  evidence = model.exact(images, 1.)[0]
  gaps = []
  for num_steps in steps:
    bounds = ais.bidirectional_bounds(model.decoder, model.marginal, images, latents, seed=8,
                                      num_steps=num_steps, num_chains=8, num_leapfrog_steps=10)
    # E lower <= log p(x) <= E upper over simulated pairs (x, z): each bound's mean error
    # over the 32 images within SIGMAS of its standard error over them (one latent per
    # image: the reverse chains' spread alone would not see that latent's draw).
    for bound, sign in (('lower', 1.), ('upper', -1.)):
      errors = bounds[bound] - evidence
      slack = SIGMAS * errors.std(ddof=1) / np.sqrt(errors.size)
      assert sign * errors.mean() <= slack, (name, num_steps, bound, errors.mean(), slack)
    gaps.append(bounds['gap'])
  # Measured on the linear model: gaps 0.85 nats at 10 distributions, 0.06 at 300.
  assert len(gaps) == 1 or gaps[1] < gaps[0] / 3, gaps


def test_rd_curve_suite():
  model = _BernoulliVAE()
  images, _ = ais.simulate(model.decoder, model.marginal, 40, seed=9)
  result = rd_curve.rd_curve_suite(model, images, seed=10, betas=(0.5, 2.), num_examples=8,
                                   num_steps=200, bdmc_examples=16, **SAMPLER)
  chosen = images[::5]  # `subsets.spread`: 8 of 40, every fifth.
  assert (result['ais_examples'], result['ais_stride'], result['ais_num_steps']) == (8, 5, 201)
  for beta in (0.5, 1., 2.):
    # Means over the 8 examples of the per-example estimates: within SIGMAS standard errors
    # over the examples of the mean of the exact values, plus the allowance.
    for name, exact in zip(('log_z', 'distortion', 'rate'), model.exact(chosen, beta)):
      key = f'ais_{name}_b{beta:g}'
      tolerance = SIGMAS * result[key + '_stderr'] + ALLOWANCE['log_normalizer']
      assert abs(result[key] - exact.mean()) <= tolerance, (key, result[key], exact.mean())
  assert result['ais_nll'] == -result['ais_log_z_b1']
  # The importance-weighted bounds on the same examples: NLL_1 is the encoder's R + D on the
  # same draws; NLL_5000 with a proposal of width 0.5 against posteriors of at least 0.1
  # is within 0.1 nats of the exact NLL (quadrature); the excess over AIS is paired.
  exact_nll = -model.exact(chosen, 1.)[0].mean()
  assert result['nll_k1'] == pytest.approx(
      result['encoder_rate'] + result['encoder_distortion'], rel=1e-5)
  assert result['nll_k1'] > result['nll_k100'] > result['nll_k5000']
  assert abs(result['nll_k5000'] - exact_nll) < .1, (result['nll_k5000'], exact_nll)
  for k in (1, 100, 5000):
    assert result[f'nll_k{k}_minus_ais'] == pytest.approx(
        result[f'nll_k{k}'] - result['ais_nll'], abs=1e-9)
  # Paired, the spread of log p(x) over the examples cancels (0.13 against 0.84 nats).
  assert result['nll_k5000_minus_ais_stderr'] < result['nll_k5000_stderr'] / 4
  # The encoder is not the posterior: its R + D exceeds -log p(x) by KL(e(z|x) || p(z|x)),
  # 5.7 nats here on average (quadrature), 3.6 standard errors of its one-draw estimate.
  assert result['encoder_rate'] + result['encoder_distortion'] > result['ais_nll']
  # BDMC on the suite's own draws (its stream 1) brackets their mean log p(x).
  pairs = ais.simulate(model.decoder, model.marginal, 16, rd_curve._stream(10, 1))
  evidence = model.exact(pairs[0], 1.)[0].mean()
  for bound, sign in (('lower', 1.), ('upper', -1.)):
    slack = SIGMAS * result[f'bdmc_{bound}_stderr']
    assert sign * (result[f'bdmc_{bound}'] - evidence) <= slack, (bound, result, evidence)
  assert result['bdmc_gap'] == pytest.approx(result['bdmc_upper'] - result['bdmc_lower'])
  with pytest.raises(errors.UserError, match='rd_curve_suite.num_chains'):
    rd_curve.rd_curve_suite(model, images, seed=10, num_chains=1)


def test_rate_gap_bounds_bracket_the_exact_gap(linear):
  """On the linear model's exact curve (means over 4 images) at four betas, an encoder 2
  nats above the curve: the bounds bracket 2, meet at a stored point, and say which side of
  the stored range they cannot bound."""
  model, images, _ = linear
  stored = np.array([0.1, 0.5, 1., 3.])

  def point(beta):
    _, distortion, rate = model.exact(images, beta)
    return rate.mean(), distortion.mean()

  rate, distortion = np.array([point(b) for b in stored]).T

  def bounds(encoder_rate, encoder_distortion):
    return rd_curve.rate_gap_bounds(stored[::-1], rate[::-1], distortion[::-1], encoder_rate,
                                    encoder_distortion)

  for beta in (0.2, 0.7, 2.):  # Between stored points: a strict bracket.
    exact_rate, exact_distortion = point(beta)
    lower, upper = bounds(exact_rate + 2., exact_distortion)
    assert lower < 2. < upper, (beta, lower, upper)
  exact_rate, exact_distortion = point(1.)
  np.testing.assert_allclose(bounds(exact_rate + 2., exact_distortion), (2., 2.), atol=1e-9)
  # Past the largest distortion (beta 0.05): at least its rate minus beta 0.1's.
  exact_rate, exact_distortion = point(.05)
  lower, upper = bounds(exact_rate + 2., exact_distortion)
  assert lower == pytest.approx(exact_rate + 2. - rate[0]) and lower < 2. < upper
  # Below the least distortion (beta 10): no lower bound from the points.
  exact_rate, exact_distortion = point(10.)
  lower, upper = bounds(exact_rate + 2., exact_distortion)
  assert np.isnan(lower) and 2. < upper


class _AffineFlow:
  """A stand-in for an encoder's flow (`models.flows.ShiftOnlyFlow`'s `bijector` and
  `inverse`): the affine map z = L u + c."""

  L = np.array([[1.5, 0.], [-0.7, 0.6]])
  c = np.array([0.4, -0.3])

  def __init__(self, inverse):
    self.inverse = inverse
    self.bijector = tfp.bijectors.Chain([tfp.bijectors.Shift(self.c),
                                         tfp.bijectors.ScaleMatvecTriL(self.L)])


class _FlowedLinearGaussian(_LinearGaussian):
  """The linear-Gaussian model with z = L u + c, u ~ N(0, I), as a VAE whose marginal is
  pushed through its encoder's flow: its curve is `_LinearGaussian`'s with W L and W c + b
  (x = W (L u + c) + b + noise), whatever the coordinates AIS anneals in."""

  W = _LinearGaussian.W @ _AffineFlow.L
  b = _LinearGaussian.W @ _AffineFlow.c + _LinearGaussian.b

  def __init__(self, inverse):
    super().__init__()
    self.encoder = type('Encoder', (), {'flow': _AffineFlow(inverse)})()
    self._base = tfd.MultivariateNormalDiag(loc=tf.zeros([2], tf.float64))

  def decoder(self, z):  # In z, the run's own coordinates.
    return tfd.MultivariateNormalDiag(loc=tf.linalg.matvec(_LinearGaussian.W, z)
                                      + _LinearGaussian.b,
                                      scale_diag=tf.fill([5], tf.constant(self.s, tf.float64)))

  def marginal_distribution(self):
    return tfd.TransformedDistribution(self._base, self.encoder.flow.bijector)


def test_annealing_space_is_the_flow_base_and_keeps_the_curve():
  # Under an inverse autoregressive flow, AIS anneals over the flow's base distribution with
  # the decoder composed with its forward; under another flow (a MAF's), over z as given.
  flowed = _FlowedLinearGaussian(inverse=True)
  decoder, marginal = rd_curve.annealing_space(flowed)
  assert marginal is flowed._base
  u = np.array([[0.3, -1.2], [2.0, 0.5]])
  np.testing.assert_allclose(decoder(u).mean(), flowed.decoder(u @ _AffineFlow.L.T
                                                                + _AffineFlow.c).mean())
  plain = _FlowedLinearGaussian(inverse=False)
  decoder, marginal = rd_curve.annealing_space(plain)
  assert decoder == plain.decoder and isinstance(marginal, tfd.TransformedDistribution)
  # The curve annealed over u is the model's exact curve in z (the rate is invariant under
  # a bijection of z; the distortion is the same function of x and z).
  images, _ = ais.simulate(flowed.decoder, flowed.marginal_distribution(), 4, seed=11)
  decoder, marginal = rd_curve.annealing_space(flowed)
  result = ais.rate_distortion_curve(decoder, marginal, images, seed=12, betas=(0.5, 1., 3.),
                                     num_steps=300, **SAMPLER)
  _assert_curve(result, flowed, images, ALLOWANCE)


@pytest.mark.parametrize('family, base', [('+-v', True), ('--v', False), ('+-+', False)])
def test_annealing_space_of_the_package_s_marginals(family, base):
  # The families as `train` builds them (smoke sizes): only the VampPrior under the IAF
  # encoder is annealed over the flow's base (the mixture); the MAF marginal of `+-+` has
  # its own flow, with a cheap inverse, and `--v` none.
  from brokenelbo import configurables  # pylint: disable=g-import-not-at-top,unused-import
  from brokenelbo.training import trainer  # pylint: disable=g-import-not-at-top
  from brokenelbo.utils import cli  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  try:
    cli.parse_gin([f'configs/{family}.gin', 'configs/smoke.gin'], [])
    model = cli.configured_arguments(trainer.train)['model']()
  finally:
    gin.clear_config()
  decoder, marginal = rd_curve.annealing_space(model)
  if not base:
    assert decoder == model.decoder
    assert type(marginal) is type(model.marginal_distribution())
    return
  assert isinstance(marginal, tfd.MixtureSameFamily)
  u = marginal.sample(3, seed=[0, 1])
  z = model.encoder.flow.bijector.forward(u)
  np.testing.assert_allclose(decoder(u).mean(), model.decoder(z).mean(), rtol=1e-6)
