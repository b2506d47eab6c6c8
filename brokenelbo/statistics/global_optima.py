"""Closed forms of the two failure cases of the VAE objective in Yacoby et al. [1].

The negative ELBO splits into an "MLE objective" and a "posterior matching" (PM) objective
(their eq. 2), L(theta, phi) = KL(p(x) || p_theta(x)) + E_p(x) KL(q_phi(z|x) ||
p_theta(z|x)), whose global optima are undesirable in two ways (Section 1, Figure 1). Both
examples are linear-Gaussian, so everything here is exact: no sampling. The case numbers
are the main text's (the Appendix C headings swap them).

Case 1 (eq. 3; Appendix C.2, eqs. 17-24), a mean-field family too poor: z ~ N(0, I_2),
x | z = L z + eps, L = cholesky(A A^T + B), eps ~ N(0, sigma2 I - B), so that p_B(x) =
N(0, A A^T + sigma2 I) for every diagonal 0 <= B_ii < sigma2 and p_B(z|x) = N(M x, S),
S = (I + L^T (sigma2 I - B)^-1 L)^-1, M = S L^T (sigma2 I - B)^-1. The best mean-field q
under KL(q || p) keeps the mean and has variances 1 / (S^-1)_ii (Appendix C.3), so the
minimal PM objective is one Gaussian KL, the same for every x. With B fixed and theta = A
learned, the optimum gives up data fit for a nearly diagonal posterior: the paper reports
L(theta_GT, phi_GT) = 0.532 and L(theta*, phi*) = 0.196 nats (`objective`,
`minimize_objective`).

Case 2 (eq. 5; Appendix C.1, eqs. 10-16), a family rich enough: z ~ N(0, 1), x | z =
theta z + eps, eps ~ N(0, sigma2 - theta^2), |theta| < sigma. Every theta is a global
optimum of the ELBO (both terms are zero), whatever its mutual information (`case2_*`; the
paper's eq. 15 carries a stray "- 4" and writes the range as [0, sigma^2]).

[1]: Yaniv Yacoby, Weiwei Pan, Finale Doshi-Velez. Characterizing and Avoiding Problematic
     Global Optima of Variational Autoencoders. _AABI_, 2020. arXiv:2003.07756
"""

from typing import NamedTuple

import numpy as np
from scipy import optimize

SIGMA2 = 0.01
B_FIXED = np.diag([0.006, 0.006])
A_GT = np.array([[0.75, 0.25], [1.5, -1.0]])


# ------------------------------------------------------------------------------------------
# Case 2: the 1-d model of eq. 5.


def _check_theta(theta, sigma2):
  theta = np.asarray(theta, dtype=float)
  if sigma2 <= 0 or np.any(theta**2 >= sigma2):
    raise ValueError(f'Need |theta| < sigma, got theta={theta}, sigma2={sigma2}.')
  return theta


def case2_marginal_variance(theta, sigma2):
  """Variance of `p_theta(x)` in Case 2: `theta^2 + (sigma2 - theta^2) = sigma2`.

  Args:
    theta: Scalar or array, the decoder weight, `|theta| < sigma`.
    sigma2: The total variance `sigma^2 > 0`.

  Returns:
    The marginal variance, with the shape of `theta` (always `sigma2`).

  Raises:
    ValueError: If some `|theta| >= sigma`.
  """
  theta = _check_theta(theta, sigma2)
  return theta**2 + (sigma2 - theta**2)


def case2_posterior(theta, sigma2):
  """The exact posterior `p_theta(z|x) = N(coef * x, var)` of Case 2 (eq. 16).

  Args:
    theta: Scalar or array, the decoder weight, `|theta| < sigma`.
    sigma2: The total variance `sigma^2 > 0`.

  Returns:
    `(coef, var)`: `theta / sigma2` and `(sigma2 - theta^2) / sigma2`.

  Raises:
    ValueError: If some `|theta| >= sigma`.
  """
  theta = _check_theta(theta, sigma2)
  return theta / sigma2, (sigma2 - theta**2) / sigma2


def case2_mutual_information(theta, sigma2):
  """`I_theta(X; Z) = 1/2 log(sigma2 / (sigma2 - theta^2))` in nats (eq. 15, corrected).

  Args:
    theta: Scalar or array, the decoder weight, `|theta| < sigma`.
    sigma2: The total variance `sigma^2 > 0`.

  Returns:
    The mutual information, with the shape of `theta`.

  Raises:
    ValueError: If some `|theta| >= sigma`.
  """
  theta = _check_theta(theta, sigma2)
  return 0.5 * np.log(sigma2 / (sigma2 - theta**2))


# ------------------------------------------------------------------------------------------
# Gaussian helpers.


def gaussian_kl(cov0, cov1, mean0=None, mean1=None):
  """`KL(N(mean0, cov0) || N(mean1, cov1))` in nats.

  Args:
    cov0: `[K, K]` covariance of the first Gaussian.
    cov1: `[K, K]` covariance of the second Gaussian.
    mean0: Optional `[K]` mean of the first (zero if omitted).
    mean1: Optional `[K]` mean of the second (zero if omitted).

  Returns:
    The KL divergence, a float.
  """
  cov0 = np.asarray(cov0, dtype=float)
  cov1 = np.asarray(cov1, dtype=float)
  k = cov0.shape[0]
  diff = np.zeros(k)
  if mean0 is not None:
    diff = diff + mean0
  if mean1 is not None:
    diff = diff - mean1
  _, logdet0 = np.linalg.slogdet(cov0)
  _, logdet1 = np.linalg.slogdet(cov1)
  trace = np.trace(np.linalg.solve(cov1, cov0))
  maha = diff @ np.linalg.solve(cov1, diff)
  return float(0.5 * (trace + maha - k + logdet1 - logdet0))


def best_mean_field(mean, cov):
  """The diagonal Gaussian `q` minimising `KL(q || N(mean, cov))` (Appendix C.3).

  The KL's mean term `(m_q - mean)^T cov^-1 (m_q - mean)` is zero only at `m_q = mean`,
  and the variance terms separate into `-log v_i + v_i (cov^-1)_ii`.

  Args:
    mean: `[K]` mean of the target.
    cov: `[K, K]` covariance of the target.

  Returns:
    `(mean, variances)`: the target mean and `1 / diag(cov^-1)`.
  """
  precision = np.linalg.inv(np.asarray(cov, dtype=float))
  return np.asarray(mean, dtype=float), 1.0 / np.diag(precision)


# ------------------------------------------------------------------------------------------
# Case 1: the 2-d model of eq. 3.


def _check_b(b, sigma2):
  b = np.asarray(b, dtype=float)
  d = np.diag(b)
  if np.any(d < 0) or np.any(d >= sigma2) or not np.allclose(b, np.diag(d)):
    raise ValueError(f'B must be diagonal with entries in [0, sigma2), got {b}.')
  return b


def case1_loading(b, a):
  """`L = cholesky(A A^T + B)`, the decoder matrix of eq. 3.

  Args:
    b: `[K, K]` diagonal matrix `B`.
    a: `[K, K]` matrix `A`.

  Returns:
    The lower-triangular `[K, K]` matrix `L`.
  """
  a = np.asarray(a, dtype=float)
  return np.linalg.cholesky(a @ a.T + np.asarray(b, dtype=float))


def case1_marginal_covariance(b, a, sigma2):
  """Covariance of `p_B(x)`: `L L^T + sigma2 I - B = A A^T + sigma2 I`.

  Args:
    b: `[K, K]` diagonal `B`, entries in `[0, sigma2)`.
    a: `[K, K]` matrix `A`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    The `[K, K]` covariance.
  """
  b = _check_b(b, sigma2)
  loading = case1_loading(b, a)
  return loading @ loading.T + sigma2 * np.eye(b.shape[0]) - b


def case1_posterior(b, a, sigma2):
  """The exact posterior `p_B(z|x) = N(M x, S)` (eqs. 23-24).

  Args:
    b: `[K, K]` diagonal `B`, entries in `[0, sigma2)`.
    a: `[K, K]` matrix `A`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    `(M, S)`: the `[K, K]` mean matrix and the `[K, K]` posterior covariance.
  """
  b = _check_b(b, sigma2)
  k = b.shape[0]
  loading = case1_loading(b, a)
  noise = sigma2 * np.eye(k) - b
  lt_ninv = np.linalg.solve(noise, loading).T  # L^T N^-1 (N is diagonal, symmetric).
  cov = np.linalg.inv(np.eye(k) + lt_ninv @ loading)
  cov = 0.5 * (cov + cov.T)
  return cov @ lt_ninv, cov


def case1_mutual_information(b, a, sigma2):
  """`I_B(X; Z) = 1/2 [log det(A A^T + sigma2 I) - sum_i log(sigma2 - B_ii)]` (eq. 22).

  Args:
    b: `[K, K]` diagonal `B`, entries in `[0, sigma2)`.
    a: `[K, K]` matrix `A`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    The mutual information in nats, a float.
  """
  b = _check_b(b, sigma2)
  a = np.asarray(a, dtype=float)
  _, logdet = np.linalg.slogdet(a @ a.T + sigma2 * np.eye(b.shape[0]))
  return float(0.5 * (logdet - np.sum(np.log(sigma2 - np.diag(b)))))


def min_posterior_matching(b, a, sigma2):
  """`min_phi E_x KL(q_phi(z|x) || p_B(z|x))` over mean-field Gaussian `q` (Figure 1A).

  The best `q(z|x)` has mean `M x` (the posterior mean, linear in `x`, so an amortised
  linear encoder attains it) and variances `1 / diag(S^-1)`; with equal means the KL does
  not depend on `x`, so no expectation is left.

  Args:
    b: `[K, K]` diagonal `B`, entries in `[0, sigma2)`.
    a: `[K, K]` matrix `A`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    The minimal PM objective in nats, a float.
  """
  _, cov = case1_posterior(b, a, sigma2)
  _, variances = best_mean_field(np.zeros(cov.shape[0]), cov)
  return gaussian_kl(np.diag(variances), cov)


class BGrid(NamedTuple):
  """PM and mutual information over a grid of diagonal `B` (Figure 1A/1B).

  Attributes:
    b11: `[n]` values of `B_11`.
    b22: `[n]` values of `B_22`.
    pm: `[n, n]` minimal PM objective, `pm[i, j]` at `B = diag(b11[i], b22[j])`.
    mutual_information: `[n, n]` `I_B(X; Z)` on the same grid.
  """
  b11: np.ndarray
  b22: np.ndarray
  pm: np.ndarray
  mutual_information: np.ndarray


def case1_b_grid(a=A_GT, sigma2=SIGMA2, num=21, max_fraction=0.95):
  """Evaluates PM and `I_B` on a square grid of diagonal `B` in `[0, sigma2)`.

  Args:
    a: `[2, 2]` matrix `A` (fixed, as in the paper's Figure 1A/1B).
    sigma2: The noise scale `sigma^2`.
    num: Grid points per axis.
    max_fraction: The largest entry is `max_fraction * sigma2` (`I_B` diverges at
      `sigma2`).

  Returns:
    A `BGrid`.
  """
  values = np.linspace(0.0, max_fraction * sigma2, num)
  pm = np.empty((num, num))
  info = np.empty((num, num))
  for i, b11 in enumerate(values):
    for j, b22 in enumerate(values):
      b = np.diag([b11, b22])
      pm[i, j] = min_posterior_matching(b, a, sigma2)
      info[i, j] = case1_mutual_information(b, a, sigma2)
  return BGrid(values, values.copy(), pm, info)


# ------------------------------------------------------------------------------------------
# Case 1 with theta = A learned and B fixed.


def data_covariance(a_gt=A_GT, sigma2=SIGMA2):
  """Covariance of the data `p(x) = N(0, A_GT A_GT^T + sigma2 I)`.

  Args:
    a_gt: `[K, K]` ground-truth `A`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    The `[K, K]` covariance.
  """
  a_gt = np.asarray(a_gt, dtype=float)
  return a_gt @ a_gt.T + sigma2 * np.eye(a_gt.shape[0])


def objective(a, data_cov, b=B_FIXED, sigma2=SIGMA2):
  """`L(A, phi*(A)) = KL(p(x) || p_A(x)) + min_phi E_p(x) KL(q_phi || p_A(z|x))` (eq. 2).

  Args:
    a: `[K, K]` matrix `A` (or its `K * K` entries, row-major).
    data_cov: `[K, K]` covariance of the zero-mean Gaussian data distribution.
    b: `[K, K]` fixed diagonal `B`.
    sigma2: The noise scale `sigma^2`.

  Returns:
    The objective in nats, a float.
  """
  data_cov = np.asarray(data_cov, dtype=float)
  k = data_cov.shape[0]
  a = np.asarray(a, dtype=float).reshape(k, k)
  mle = gaussian_kl(data_cov, a @ a.T + sigma2 * np.eye(k))
  return mle + min_posterior_matching(b, a, sigma2)


class Optimum(NamedTuple):
  """The minimiser of `objective` over `A`.

  Attributes:
    a: `[K, K]` optimal `A` (one point of a set: the objective depends on `A A^T` only).
    value: The objective there.
    mle: Its MLE part, `KL(p(x) || p_A(x))`.
    pm: Its PM part.
  """
  a: np.ndarray
  value: float
  mle: float
  pm: float


def minimize_objective(data_cov, b=B_FIXED, sigma2=SIGMA2, num_starts=8, seed=0):
  """Minimises `objective` over the entries of `A` with L-BFGS-B from several starts.

  Args:
    data_cov: `[K, K]` data covariance.
    b: `[K, K]` fixed diagonal `B`.
    sigma2: The noise scale `sigma^2`.
    num_starts: Number of random initialisations (standard normal entries).
    seed: Seed of the initialisations.

  Returns:
    An `Optimum`.
  """
  data_cov = np.asarray(data_cov, dtype=float)
  k = data_cov.shape[0]
  rng = np.random.default_rng(seed)
  best = None
  for _ in range(num_starts):
    result = optimize.minimize(
        objective, rng.normal(size=k * k), args=(data_cov, b, sigma2),
        method='L-BFGS-B', options=dict(ftol=1e-14, gtol=1e-10, maxiter=2000))
    if best is None or result.fun < best.fun:
      best = result
  a = best.x.reshape(k, k)
  mle = gaussian_kl(data_cov, a @ a.T + sigma2 * np.eye(k))
  return Optimum(a, float(best.fun), mle, min_posterior_matching(b, a, sigma2))
