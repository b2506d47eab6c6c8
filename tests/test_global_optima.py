"""Tests of the closed forms in `brokenelbo.statistics.global_optima`."""

import numpy as np
import pytest
from scipy import optimize

from brokenelbo.statistics import global_optima as go

SIGMA2 = go.SIGMA2


def _log_normal(x, mean, cov):
  """Log density of `N(mean, cov)` at the rows of `x`."""
  k = cov.shape[0]
  diff = x - mean
  sol = np.linalg.solve(cov, diff.T).T
  _, logdet = np.linalg.slogdet(cov)
  return -0.5 * (np.sum(diff * sol, axis=-1) + logdet + k * np.log(2 * np.pi))


def _mc_within(samples, value, num_se=5.0):
  mean = samples.mean()
  se = samples.std(ddof=1) / np.sqrt(samples.size)
  assert abs(mean - value) < num_se * se + 1e-12, (mean, value, se)


@pytest.mark.parametrize('theta', [0.0, 0.03, -0.06, 0.09])
def test_case2_marginal_variance(theta):
  # x = theta z + eps, z ~ N(0, 1), eps ~ N(0, sigma2 - theta^2): Var x = sigma2 for all theta.
  variance = go.case2_marginal_variance(theta, SIGMA2)
  assert variance == pytest.approx(SIGMA2, rel=1e-12)
  # With the posterior N(coef x, var), the law of total variance gives back Var z = 1:
  # E Var(z|x) + Var E(z|x) = var + coef^2 Var x.
  coef, var = go.case2_posterior(theta, SIGMA2)
  assert var + coef**2 * variance == pytest.approx(1., rel=1e-12)


def test_case2_marginal_variance_keeps_the_shape_of_theta():
  thetas = np.array([[0.0, 0.05], [-0.09, 0.02]])
  np.testing.assert_allclose(go.case2_marginal_variance(thetas, SIGMA2),
                             np.full((2, 2), SIGMA2), rtol=1e-12)


@pytest.mark.parametrize('theta', [0.02, 0.07, -0.095])
def test_case2_mutual_information_mc(theta):
  rng = np.random.default_rng(2)
  n = 100_000
  z = rng.normal(size=n)
  noise = SIGMA2 - theta**2
  x = theta * z + np.sqrt(noise) * rng.normal(size=n)
  log_ratio = (-0.5 * (x - theta * z)**2 / noise - 0.5 * np.log(noise)
               + 0.5 * x**2 / SIGMA2 + 0.5 * np.log(SIGMA2))
  _mc_within(log_ratio, go.case2_mutual_information(theta, SIGMA2))


def test_case2_posterior_and_errors():
  theta = 0.06
  coef, var = go.case2_posterior(theta, SIGMA2)
  joint = np.array([[SIGMA2, theta], [theta, 1.0]])  # Cov of (x, z), eq. 13.
  assert coef == pytest.approx(joint[1, 0] / joint[0, 0])
  assert var == pytest.approx(1.0 - theta**2 / SIGMA2)
  for fn in (go.case2_marginal_variance, go.case2_posterior, go.case2_mutual_information):
    with pytest.raises(ValueError):
      fn(0.1, SIGMA2)
    with pytest.raises(ValueError):
      fn(-0.2, SIGMA2)


def _case1_joint(b, a):
  """Brute-force joint covariance of `(x, z)` for Case 1."""
  loading = np.linalg.cholesky(a @ a.T + b)
  cov_x = loading @ loading.T + SIGMA2 * np.eye(2) - b
  return np.block([[cov_x, loading], [loading.T, np.eye(2)]])


@pytest.mark.parametrize('diag', [(0.0, 0.0), (0.006, 0.006), (0.009, 0.001)])
def test_case1_posterior_matches_conditioning(diag):
  b = np.diag(diag)
  joint = _case1_joint(b, go.A_GT)
  sxx, sxz, szz = joint[:2, :2], joint[:2, 2:], joint[2:, 2:]
  mean_matrix, cov = go.case1_posterior(b, go.A_GT, SIGMA2)
  np.testing.assert_allclose(mean_matrix, sxz.T @ np.linalg.inv(sxx), rtol=1e-6, atol=1e-8)
  np.testing.assert_allclose(cov, szz - sxz.T @ np.linalg.solve(sxx, sxz),
                             rtol=1e-6, atol=1e-10)
  np.testing.assert_allclose(go.case1_marginal_covariance(b, go.A_GT, SIGMA2),
                             go.data_covariance(), rtol=1e-12)


def test_case1_mutual_information_mc():
  b = np.diag([0.008, 0.002])
  rng = np.random.default_rng(3)
  n = 100_000
  loading = go.case1_loading(b, go.A_GT)
  noise = SIGMA2 * np.eye(2) - b
  z = rng.normal(size=(n, 2))
  x = z @ loading.T + rng.normal(size=(n, 2)) * np.sqrt(np.diag(noise))
  log_ratio = (_log_normal(x - z @ loading.T, np.zeros(2), noise)
               - _log_normal(x, np.zeros(2), go.data_covariance()))
  _mc_within(log_ratio, go.case1_mutual_information(b, go.A_GT, SIGMA2))


def test_gaussian_kl_mc():
  rng = np.random.default_rng(4)
  _, cov = go.case1_posterior(np.diag([0.003, 0.007]), go.A_GT, SIGMA2)
  mean_p = np.array([0.3, -0.2])
  mean_q = np.array([0.25, -0.1])
  _, variances = go.best_mean_field(mean_p, cov)
  cov_q = np.diag(variances * 1.3)
  n = 100_000
  z = mean_q + rng.normal(size=(n, 2)) * np.sqrt(np.diag(cov_q))
  log_ratio = _log_normal(z, mean_q, cov_q) - _log_normal(z, mean_p, cov)
  _mc_within(log_ratio, go.gaussian_kl(cov_q, cov, mean_q, mean_p))


def test_best_mean_field_beats_perturbations():
  rng = np.random.default_rng(5)
  _, cov = go.case1_posterior(go.B_FIXED, go.A_GT, SIGMA2)
  mean = np.array([0.1, -0.4])
  best_mean, variances = go.best_mean_field(mean, cov)
  np.testing.assert_array_equal(best_mean, mean)
  best = go.gaussian_kl(np.diag(variances), cov, best_mean, mean)
  assert best > 0  # The posterior is correlated, so mean-field cannot be exact.
  assert best == pytest.approx(go.min_posterior_matching(go.B_FIXED, go.A_GT, SIGMA2))
  for _ in range(50):
    v = variances * np.exp(0.2 * rng.normal(size=2))
    m = mean + 0.05 * rng.normal(size=2)
    assert go.gaussian_kl(np.diag(v), cov, m, mean) > best


def test_b_grid_shape_and_corner():
  grid = go.case1_b_grid(num=5)
  assert grid.pm.shape == grid.mutual_information.shape == (5, 5)
  assert np.all(grid.pm >= 0)
  # Figure 1A: PM prefers large B_11 and small B_22.
  assert np.unravel_index(np.argmin(grid.pm), grid.pm.shape) == (4, 0)


def test_learned_a_optimum():
  data_cov = go.data_covariance()
  at_gt = go.objective(go.A_GT, data_cov)
  assert at_gt == pytest.approx(go.min_posterior_matching(go.B_FIXED, go.A_GT, SIGMA2))
  assert at_gt == pytest.approx(0.532, abs=5e-4)
  best = go.minimize_objective(data_cov, num_starts=4)
  assert best.value < at_gt - 0.1
  assert best.value == pytest.approx(0.196, abs=5e-4)
  assert best.value == pytest.approx(best.mle + best.pm)
  grad = optimize.approx_fprime(best.a.ravel(), go.objective, 1e-7, data_cov)
  assert np.max(np.abs(grad)) < 1e-4
