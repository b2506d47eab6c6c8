"""The Henze-Zirkler multivariate normality statistic, differentiable, and its null law.

For a sample x_1..x_N in R^d with mean m and covariance S = (1/N) sum_j (x_j - m)(x_j - m)^T
(the biased normalisation of `pingouin.multivariate_normality`), squared Mahalanobis
distances D_j = (x_j - m)^T S^-1 (x_j - m) and D_jk = (x_j - x_k)^T S^-1 (x_j - x_k), and
beta = (1 / sqrt 2) ((2d + 1) N / 4)^(1 / (d + 4)) (Henze & Zirkler 1990),

  HZ = (1/N) sum_{j,k} exp(-beta^2 D_jk / 2)
       - 2 (1 + beta^2)^(-d/2) sum_j exp(-beta^2 D_j / (2 (1 + beta^2)))
       + N (1 + 2 beta^2)^(-d/2).

`henze_zirkler` is TensorFlow with finite gradients everywhere, for the exp(HZ) penalty of
Yacoby et al. (2020, Appendix D): S is inverted through a jittered Cholesky factor and only
squared distances enter. Under normality HZ is approximately log-normal:
`henze_zirkler_null` returns its moments, `henze_zirkler_pvalue` the upper-tail p-value (as
in pingouin). What HZ measures, the jitter and where pingouin differs: docs/methods.md.

#### References

[1] Henze, Zirkler. A class of invariant consistent tests for multivariate normality.
    Communications in Statistics - Theory and Methods 19(10):3595-3617, 1990.
[2] Yacoby, Pan, Doshi-Velez. Characterizing and Avoiding Problematic Global Optima of
    Variational Autoencoders. AABI 2020 (arXiv:2003.07756).
[3] Vallat. Pingouin: statistics in Python. JOSS 3(31):1026, 2018.
"""

import math

import numpy as np
import tensorflow as tf

# Jitter added to the covariance, in float epsilons times its mean diagonal.
_JITTER_EPS = 10.


def smoothing_parameter(n, d):
  """The smoothing parameter beta of Henze & Zirkler (1990) for N points in d dimensions.

  Args:
    n: number of points N.
    d: dimension d.

  Returns:
    Python `float` beta = (1 / sqrt 2) ((2d + 1) N / 4)^(1 / (d + 4)).
  """
  return ((2. * d + 1.) * n / 4.) ** (1. / (d + 4.)) / math.sqrt(2.)


def henze_zirkler(z):
  """The Henze-Zirkler statistic HZ of each sample, differentiable in the points.

  Args:
    z: float `Tensor` `[..., N, d]`: samples of N points in d dimensions, with any leading
      batch dimensions (e.g. restarts); d must be static, N may be known only at run time
      (a batch of a `tf.data` pipeline).

  Returns:
    `Tensor` `[...]` of the dtype of `z`: HZ of each sample (see the module docstring).
  """
  z = tf.convert_to_tensor(z)
  n, d = z.shape[-2], z.shape[-1]
  if d is None:
    raise ValueError(f'henze_zirkler needs a static d, got shape {z.shape}.')
  dtype = z.dtype
  if n is None:
    n = tf.cast(tf.shape(z)[-2], dtype)
    beta2 = ((2. * d + 1.) * n / 4.) ** (2. / (d + 4.)) / 2.  # smoothing_parameter ** 2.
  else:
    beta2 = tf.constant(smoothing_parameter(n, d) ** 2, dtype)
  centred = z - tf.reduce_mean(z, axis=-2, keepdims=True)
  cov = tf.linalg.matmul(centred, centred, transpose_a=True) / n
  scale = tf.reduce_mean(tf.linalg.diag_part(cov), axis=-1)[..., tf.newaxis, tf.newaxis]
  jitter = _JITTER_EPS * np.finfo(dtype.as_numpy_dtype).eps * scale + np.finfo(
      dtype.as_numpy_dtype).tiny
  chol = tf.linalg.cholesky(cov + jitter * tf.eye(d, dtype=dtype))
  # Whitened points w_j = L^-1 (x_j - m): D_j = |w_j|^2, D_jk = |w_j - w_k|^2.
  whitened = tf.linalg.triangular_solve(chol, tf.linalg.matrix_transpose(centred))
  whitened = tf.linalg.matrix_transpose(whitened)  # [..., N, d]
  d_j = tf.reduce_sum(tf.square(whitened), axis=-1)  # [..., N]
  point_term = 2. * (1. + beta2) ** (-d / 2.) * tf.reduce_sum(
      tf.exp(-beta2 / (2. * (1. + beta2)) * d_j), axis=-1)
  return _pair_term(whitened, beta2, n) - point_term + n * (1. + 2. * beta2) ** (-d / 2.)


def _pair_term(whitened, beta2, n):
  """(1/N) sum_{j,k} E_jk, E_jk = exp(-beta^2 |w_j - w_k|^2 / 2), with its gradient in
  closed form.

  The N x N terms are the cost of HZ (and of LiBI's step 1). Differentiating through them
  passes over the N x N matrices several times. Both (j, k) and (k, j) depend on w_j, so
  d/dw_j = -(2 beta^2 / N) (w_j sum_k E_jk - sum_k E_jk w_k): only E's row sums and one
  product E w, computed with E.
  """

  @tf.custom_gradient
  def pair_term(whitened):
    d_j = tf.reduce_sum(tf.square(whitened), axis=-1)
    gram = tf.linalg.matmul(whitened, whitened, transpose_b=True)
    d_jk = tf.maximum(d_j[..., :, tf.newaxis] + d_j[..., tf.newaxis, :] - 2. * gram, 0.)
    pairs = tf.exp(-beta2 / 2. * d_jk)
    row_sums = tf.reduce_sum(pairs, axis=-1)

    def grad(upstream):
      weighted = tf.linalg.matmul(pairs, whitened)
      return (-2. * beta2 / n) * upstream[..., tf.newaxis, tf.newaxis] * (
          whitened * row_sums[..., tf.newaxis] - weighted)

    return tf.reduce_sum(row_sums, axis=-1) / n, grad

  return pair_term(whitened)


def henze_zirkler_null(n, d):
  """Moments of HZ under normality and the log-normal law matched to them.

  Args:
    n: number of points N.
    d: dimension d.

  Returns:
    `dict` of Python `float`s: `mean` and `variance` of HZ under the null (Henze & Zirkler
    1990), and `log_mean`, `log_std`, the parameters of the log-normal with those moments
    (log HZ ~ N(log_mean, log_std^2) approximately).
  """
  b2 = smoothing_parameter(n, d) ** 2
  a = 1. + 2. * b2
  wb = (1. + b2) * (1. + 3. * b2)
  mean = 1. - a ** (-d / 2.) * (1. + d * b2 / a + d * (d + 2.) * b2 ** 2 / (2. * a ** 2))
  variance = (
      2. * (1. + 4. * b2) ** (-d / 2.)
      + 2. * a ** (-d) * (1. + 2. * d * b2 ** 2 / a ** 2
                          + 3. * d * (d + 2.) * b2 ** 4 / (4. * a ** 4))
      - 4. * wb ** (-d / 2.) * (1. + 3. * d * b2 ** 2 / (2. * wb)
                                + d * (d + 2.) * b2 ** 4 / (2. * wb ** 2)))
  log_std = math.sqrt(math.log1p(variance / mean ** 2))
  log_mean = math.log(mean) - log_std ** 2 / 2.
  return dict(mean=mean, variance=variance, log_mean=log_mean, log_std=log_std)


def henze_zirkler_pvalue(hz, n, d):
  """Upper-tail p-value of HZ under the log-normal approximation to its null law.

  Args:
    hz: array-like of HZ values (any shape), e.g. from `henze_zirkler`.
    n: number of points N of each sample.
    d: dimension d.

  Returns:
    `np.ndarray` of the shape of `hz`: P(HZ' >= hz) for HZ' log-normal (see
    `henze_zirkler_null`).
  """
  null = henze_zirkler_null(n, d)
  hz = np.asarray(hz, np.float64)
  with np.errstate(divide='ignore'):
    u = (np.log(hz) - null['log_mean']) / (null['log_std'] * math.sqrt(2.))
  return 0.5 * np.vectorize(math.erfc)(u)
