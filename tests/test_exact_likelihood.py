"""The exact marginal likelihood of a 2-D latent model (`statistics.exact_likelihood`) and the
population information (`statistics.population`), against closed forms and brute force."""

import numpy as np
import pytest
from scipy import special

from brokenelbo.data import synthetic as data
from brokenelbo.statistics import exact_likelihood
from brokenelbo.statistics import population


@pytest.mark.parametrize('name', ['linear_jtex', 'gaussian'])
def test_quadrature_is_the_closed_form_on_the_linear_data_sets(name):
  # x ~ N(0, W^T W + Psi): the marginal is Gaussian. Gaussian's noise variance is 1e-6, so
  # its posterior is ~1e-3 wide: a grid over the prior would miss it entirely.
  truth = data.ground_truth(name)
  x = data.synthetic('test', name=name)[:40]
  result = exact_likelihood.log_marginal_likelihood(x, truth.mean, truth.noise_variance)
  np.testing.assert_allclose(result['log_likelihood'], truth.exact_log_likelihood(x),
                             rtol=0, atol=1e-6)
  assert np.all(result['converged']) and np.all(result['num_modes'] == 1)


def _cubic_brute_force(truth, x, points=2001, width=12.):
  """log p(x) of CubicJTEx on a uniform grid over u = L z, independent of the quadrature.

  p(x) = int N(u; 0, L L^T) prod_i N(x_i; u_i^3, psi_i) du; the likelihood of u_i is
  negligible outside cbrt(x_i -+ `width` sd), which the grid spans with `points` points.
  """
  scale = np.sqrt(truth.noise_variance)
  axes = [np.linspace(np.cbrt(x[i] - width * scale[i]), np.cbrt(x[i] + width * scale[i]),
                      points) for i in range(2)]
  u = np.stack(np.meshgrid(*axes, indexing='ij'), axis=-1)
  covariance = truth.scale_tril @ truth.scale_tril.T
  log_prior = (-0.5 * np.einsum('...i,ij,...j', u, np.linalg.inv(covariance), u)
               - 0.5 * np.linalg.slogdet(covariance)[1] - np.log(2 * np.pi))
  log_likelihood = sum(-0.5 * (x[i] - u[..., i]**3)**2 / scale[i]**2
                       - 0.5 * np.log(2 * np.pi * scale[i]**2) for i in range(2))
  weights = np.ones(points)
  weights[[0, -1]] = 0.5
  spacing = [(a[-1] - a[0]) / (points - 1) for a in axes]
  return (special.logsumexp(log_prior + log_likelihood + np.log(np.outer(weights, weights)))
          + np.log(spacing[0] * spacing[1]))


def test_quadrature_matches_a_brute_force_grid_on_cubic_jtex():
  # Test points of data set 0: 89, |x| < 0.01, where the posterior is flat-topped (u^3 ~ 0
  # for |u| < 0.3); 344, |x_2| = 171, where it is 1e-3 wide; 54 and 368, which have two
  # modes; 53, an ordinary one.
  truth = data.ground_truth('cubic_jtex')
  x = data.synthetic('test', name='cubic_jtex').astype(np.float64)[[89, 344, 54, 368, 53]]
  result = exact_likelihood.log_marginal_likelihood(x, truth.mean, truth.noise_variance)
  brute = np.array([_cubic_brute_force(truth, row) for row in x])
  np.testing.assert_allclose(result['log_likelihood'], brute, rtol=0, atol=1e-5)
  assert np.all(result['converged'])
  assert result['num_modes'][2] == 2 and result['num_modes'][3] == 2


def test_two_equal_modes_are_both_found():
  # f(z) = (z_1^2, z_2): x_1 = 1 has the preimages z_1 = +-1, of equal mass, so missing one
  # would lose log 2. p(x) = int N(z_1) N(x_1; z_1^2, psi) dz_1 * N(x_2; 0, 1 + psi).
  psi = 1e-4
  x = np.array([[1., 0.3], [0.25, -1.2]])

  def mean_fn(z):
    return np.stack([z[:, 0]**2, z[:, 1]], axis=-1)

  result = exact_likelihood.log_marginal_likelihood(x, mean_fn, [psi, psi])
  z1 = np.linspace(-3., 3., 600001)
  expected = []
  for row in x:
    first = special.logsumexp(-0.5 * z1**2 - 0.5 * (row[0] - z1**2)**2 / psi) + np.log(
        (z1[1] - z1[0]) / (2 * np.pi * np.sqrt(psi)))
    expected.append(first - 0.5 * row[1]**2 / (1 + psi) - 0.5 * np.log(2 * np.pi * (1 + psi)))
  np.testing.assert_allclose(result['log_likelihood'], expected, rtol=0, atol=1e-6)
  np.testing.assert_array_equal(result['num_modes'], [2, 2])


def test_refinement_converges_to_the_tolerance():
  # CubicJTEx points that take several levels (54: two modes; 89: flat-topped; 60). At each
  # tolerance every point converges, its reported error (the last two levels' difference)
  # is below it and so is its distance to the brute-force grid; a tighter tolerance costs
  # more grid points.
  truth = data.ground_truth('cubic_jtex')
  x = data.synthetic('test', name='cubic_jtex').astype(np.float64)[[54, 89, 60]]
  brute = np.array([_cubic_brute_force(truth, row) for row in x])
  evaluations = []
  for tolerance in (1e-1, 1e-3, 1e-6):
    result = exact_likelihood.log_marginal_likelihood(x, truth.mean, truth.noise_variance,
                                                      tolerance=tolerance)
    assert np.all(result['converged']) and np.all(result['error'] < tolerance)
    assert np.all(np.abs(result['log_likelihood'] - brute) < tolerance)
    evaluations.append(result['evaluations'])
  assert np.all(np.diff(evaluations, axis=0) >= 0)
  assert evaluations[-1][0] > 10 * evaluations[0][0]


def _linear_encoder(name, gain_factor=1., bias=0., scale_factor=1.):
  """A linear q(z|x) = N(M x + bias, diag(s^2)) of a linear data set: at the defaults the
  best mean-field Gaussian to the true posterior (M = S W Psi^-1, S = (I + W Psi^-1 W^T)^-1,
  s_i^2 = 1 / (S^-1)_ii); and the aggregate posterior q(z) = N(bias, M Cov(x) M^T + s^2)
  it has under x ~ N(0, Cov(x))."""
  truth = data.ground_truth(name)
  precision = np.eye(2) + truth.loading @ np.diag(1. / truth.noise_variance) @ truth.loading.T
  gain = gain_factor * np.linalg.inv(precision) @ truth.loading @ np.diag(
      1. / truth.noise_variance)
  scale = scale_factor / np.sqrt(np.diag(precision))

  def encode(x):
    return x @ gain.T + bias, np.broadcast_to(scale, (len(x), 2))

  aggregate = gain @ truth.marginal_covariance @ gain.T + np.diag(scale**2)
  return truth, encode, aggregate, scale, np.full(2, bias)


def _gaussian_information(aggregate, scale, loc):
  """I_q = h(q(z)) - h(q(z|x)) and KL(N(loc, aggregate) || N(0, I)) in closed form."""
  log_det = np.linalg.slogdet(aggregate)[1]
  information = 0.5 * log_det - np.sum(np.log(scale))
  gap = 0.5 * (np.trace(aggregate) + loc @ loc - 2. - log_det)
  return information, gap


@pytest.mark.parametrize('name, gain_factor, bias, scale_factor', [
    ('gaussian', 1., 0., 1.),       # The ground truth's q: I_q ~ 14.1 >> log 500; gap ~ 0.
    ('linear_jtex', 1., 0., 1.),    # The ground truth's q: I_q ~ 6.2, gap 2e-5.
    ('linear_jtex', 0.7, 0.3, 3.),  # A poorer q: I_q ~ 3.3, gap ~ 0.12.
])
def test_population_information_is_the_closed_form(name, gain_factor, bias, scale_factor):
  truth, encode, aggregate, scale, loc = _linear_encoder(name, gain_factor, bias,
                                                         scale_factor)
  information, gap = _gaussian_information(aggregate, scale, loc)
  result = population.population_information(encode, truth.mean, truth.noise_variance,
                                             seed=0, num_queries=1000)
  # The standard errors cover the query draws (about 0.045 for I_q, 0.003 for the gap);
  # 0.005 nats more for what is left of the Jensen bias.
  assert abs(result['mutual_information'] - information) < (
      4 * result['mutual_information_stderr'] + 0.005)
  assert abs(result['marginal_kl'] - gap) < 4 * result['marginal_kl_stderr'] + 0.005
  # R = I_q + KL(q(z) || p(z)) holds by construction, up to the rate's own Monte Carlo.
  assert result['rate'] == pytest.approx(
      result['mutual_information'] + result['marginal_kl'], abs=0.15)
  if name == 'gaussian':
    # The ground truth's gap is ~0, to 0.01 nats: far from the 7.86 of R - I_q with I_q
    # capped at log 500 by the 500 test points.
    assert abs(result['marginal_kl']) < 0.01 and result['marginal_kl_stderr'] < 0.01
    assert result['mutual_information'] > 14.


def test_population_information_matches_many_fresh_points_on_cubic_jtex():
  # A nonlinear case, q(z|x) = N(L^-1 cbrt(x), 0.3^2 I) on CubicJTEx: I_q ~ 2.7 is small
  # enough for the plain estimator with N = 200,000 fresh points (components), none of them
  # the query's own, to be unbiased for q(z) to 1e-3 nats (relative variance / N).
  truth = data.ground_truth('cubic_jtex')
  inverse = np.linalg.inv(truth.scale_tril)

  def encode(x):
    return np.cbrt(x) @ inverse.T, np.full((len(x), 2), 0.3)

  result = population.population_information(encode, truth.mean, truth.noise_variance,
                                             seed=1, num_queries=1000)
  rng = np.random.default_rng(2)
  x, _ = truth.sample(1000, rng)
  loc, scale = encode(x.astype(np.float64))
  z = loc + scale * rng.standard_normal(loc.shape)
  components, _ = truth.sample(200000, rng)
  component_loc, component_scale = encode(components.astype(np.float64))
  log_q = np.stack([special.logsumexp(np.sum(
      -0.5 * ((row - component_loc) / component_scale)**2 - np.log(component_scale),
      axis=-1)) for row in z]) - np.log(len(components)) - np.log(2 * np.pi)
  log_posterior = np.sum(-0.5 * ((z - loc) / scale)**2 - np.log(scale), axis=-1) - np.log(
      2 * np.pi)
  information = log_posterior - log_q
  gap = log_q + 0.5 * np.sum(z**2, axis=-1) + np.log(2 * np.pi)
  for name, values in (('mutual_information', information), ('marginal_kl', gap)):
    stderr = np.hypot(result[f'{name}_stderr'], values.std() / np.sqrt(len(values)))
    assert abs(result[name] - values.mean()) < 4 * stderr, name
