"""Synthetic data: the four ground-truth generative models of Yacoby et al. (2020, App. E).

Every data set is drawn from a known model with a 2-dimensional standard normal latent,

    z ~ N(0, I_2),    x | z = f(z) + eps,    eps ~ N(0, diag(noise_variance)):

- `LinearJTEx` ('linear_jtex'; Section 3, eq. 3; Appendix E item 1): f(z) = L z,
  L = cholesky(A A^T + B), eps ~ N(0, sigma2 I - B), sigma2 = 0.01, B = diag(0.006, 0.006),
  A = [[0.75, 0.25], [1.5, -1.0]]; marginal N(0, A A^T + sigma2 I): `exact_log_likelihood`.
- `CubicJTEx` ('cubic_jtex'; item 2): the same with f(z) = (L z)^3, element-wise.
- `Gaussian` ('gaussian'; item 3): x in R^4, f(z) = z^T A, A of shape [2, 4],
  eps ~ N(0, 1e-6 I); marginal N(0, A^T A + 1e-6 I): `exact_log_likelihood`.
- `Mobius` ('mobius'; item 4): f is a tanh MLP 2 -> 50 -> 50 -> 2 (`mlp`) fitted to
  m(z) = (a z + b) / (c z + d) of z = z1 + i z2 (`mobius_transform`), a = 1, b = 1 + 4i,
  c = 1, d = 7 + 4i, stored in `brokenelbo/data/assets/mobius_f.npz`; eps ~ N(0, 1e-5 I).

It owns the models, their parameters and the fixed draws: `sample(n, seed)` gives `(x, z)`
(`float32`), `synthetic(split, name, index)` the fixed `[500, D]` array of one split (500
training, validation, test points; 5 data sets per type), or `[500, K, D]` for K indices.
More: docs/methods.md.

#### References

[1]: Yaniv Yacoby, Weiwei Pan and Finale Doshi-Velez. Characterizing and Avoiding
     Problematic Global Optima of Variational Autoencoders. In _AABI_, 2020.
"""

import dataclasses
import functools
import os
import time
import zlib

import gin
import numpy as np
import scipy.optimize

from brokenelbo import domains
from brokenelbo import errors


SPLITS = ('train', 'validation', 'test')

NAMES = ('linear_jtex', 'cubic_jtex', 'gaussian', 'mobius')

# Appendix E: 500 points per split, 5 data sets per type.
NUM_EXAMPLES = 500
NUM_DATASETS = 5

LATENT_DIM = 2

# Ground-truth parameters of Appendix E (items 1 to 4).
JTEX_A = ((0.75, 0.25), (1.5, -1.0))
JTEX_B = ((0.006, 0.0), (0.0, 0.006))
JTEX_SIGMA2 = 0.01
GAUSSIAN_A = ((-0.7074, 0.0995, 0.0286, 0.1240),
              (0.7074, 0.9948, -0.9995, 0.9920))
GAUSSIAN_SIGMA2 = 1e-6
MOBIUS_COEFFICIENTS = (1 + 0j, 1 + 4j, 1 + 0j, 7 + 4j)   # a, b, c, d
MOBIUS_SIGMA2 = 1e-5

MOBIUS_ASSET = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets',
                            'mobius_f.npz')
# Hidden widths of the Mobius network f; its hidden units are tanh, its output linear.
MOBIUS_HIDDEN = (50, 50)
# RMS error (over both outputs) of the stored f against m(z), on 1,000,000 fresh
# z ~ N(0, I) (seed 12345): 2.11e-4, reported by `fit_mobius_network` as `test_rms_error`.
MOBIUS_RMS_ERROR = 2.1e-4
# The same on the fresh z with |z| < 3.5 only (`test_bulk_rms_error`).
MOBIUS_BULK_RMS_ERROR = 4.8e-5

# Mixed into every loader seed, so that these draws share no stream with other seeds.
_SEED_TAG = zlib.crc32(b'brokenelbo.data.synthetic')


def _matrix(value):
  return np.array(value, dtype=np.float64)


def mobius_transform(z, coefficients=MOBIUS_COEFFICIENTS):
  """Returns m(z) = (a z + b) / (c z + d) for z = z1 + i z2, as [real, imaginary].

  Args:
    z: array-like `[..., 2]`: real and imaginary parts.
    coefficients: the complex constants `(a, b, c, d)`; default those of Appendix E.

  Returns:
    `np.ndarray`, `float64`, `[..., 2]`: real and imaginary parts of m(z).
  """
  z = np.asarray(z, dtype=np.float64)
  a, b, c, d = coefficients
  w = z[..., 0] + 1j * z[..., 1]
  m = (a * w + b) / (c * w + d)
  return np.stack([m.real, m.imag], axis=-1)


def mlp(z, weights, activation=np.tanh):
  """The Mobius network f: `weights = (W1, b1, ..., Wk, bk)`, hidden `activation`, linear out.

  Plain matrix products, so the same function runs on `tf.Tensor`s given `activation=tf.tanh`
  and weights (or `z`) of one dtype.
  """
  h = z
  num_layers = len(weights) // 2
  for k in range(num_layers):
    h = h @ weights[2 * k] + weights[2 * k + 1]
    if k < num_layers - 1:
      h = activation(h)
  return h


@dataclasses.dataclass(frozen=True, eq=False)
class GroundTruth:
  """A model z ~ N(0, I), x | z = mean(z) + N(0, diag(noise_variance)); see subclasses."""

  name = None
  data_dim = None
  latent_dim = LATENT_DIM

  @property
  def noise_variance(self):
    """`float64` `[data_dim]`: the diagonal of the observation noise's covariance."""
    raise NotImplementedError

  def mean(self, z):
    """f(z): `float64` `[n, data_dim]` for `z` `[n, 2]`."""
    raise NotImplementedError

  def sample(self, n, seed):
    """Draws `n` pairs from the model.

    Args:
      n: Python `int`, the number of draws.
      seed: an `int` or a sequence of `int`s, as `np.random.default_rng` takes it; the
        same seed gives the same arrays.

    Returns:
      x: `np.ndarray`, `float32`, `[n, data_dim]`.
      z: `np.ndarray`, `float32`, `[n, 2]`: the latents that generated `x`.
    """
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, self.latent_dim))
    eps = rng.standard_normal((n, self.data_dim)) * np.sqrt(self.noise_variance)
    x = self.mean(z) + eps
    return x.astype(np.float32), z.astype(np.float32)


class _LinearGaussian(GroundTruth):
  """A linear f(z) = z @ `loading`: the marginal of x is Gaussian, known in closed form."""

  @property
  def loading(self):
    """`float64` `[2, data_dim]`: f(z) = z @ loading."""
    raise NotImplementedError

  def mean(self, z):
    return np.asarray(z, dtype=np.float64) @ self.loading

  @property
  def marginal_covariance(self):
    """`float64` `[data_dim, data_dim]`: Cov(x) = loading^T loading + diag(noise_variance)."""
    return self.loading.T @ self.loading + np.diag(self.noise_variance)

  def exact_log_likelihood(self, x):
    """log p(x) = log N(x; 0, `marginal_covariance`), per row of `x` `[n, data_dim]`.

    Returns:
      `np.ndarray`, `float64`, `[n]`, in nats.
    """
    x = np.asarray(x, dtype=np.float64)
    chol = np.linalg.cholesky(self.marginal_covariance)
    white = np.linalg.solve(chol, x.T)                       # [data_dim, n]
    log_det = 2.0 * np.sum(np.log(np.diag(chol)))
    return -0.5 * (np.sum(white**2, axis=0) + log_det + self.data_dim * np.log(2 * np.pi))


@dataclasses.dataclass(frozen=True, eq=False)
class _JTExParameters(GroundTruth):
  """The parameters shared by LinearJTEx and CubicJTEx: A, B and sigma2."""

  a: np.ndarray = dataclasses.field(default_factory=lambda: _matrix(JTEX_A))
  b: np.ndarray = dataclasses.field(default_factory=lambda: _matrix(JTEX_B))
  sigma2: float = JTEX_SIGMA2

  data_dim = 2

  @property
  def scale_tril(self):
    """L = cholesky(A A^T + B), `float64` `[2, 2]`, lower triangular."""
    return np.linalg.cholesky(self.a @ self.a.T + self.b)

  @property
  def noise_variance(self):
    """sigma2 - diag(B): the noise is N(0, sigma2 I - B)."""
    return self.sigma2 - np.diag(self.b)


@dataclasses.dataclass(frozen=True, eq=False)
class LinearJTEx(_JTExParameters, _LinearGaussian):
  """LinearJTEx (Eq. 3; App. E item 1): x = L z + eps, L = cholesky(A A^T + B).

  eps ~ N(0, sigma2 I - B), so Cov(x) = A A^T + sigma2 I for every diagonal B < sigma2 I.
  The parameter learned in the paper is theta = A; sigma2 and B are fixed to these values.
  """

  name = 'linear_jtex'

  @property
  def loading(self):
    return self.scale_tril.T


@dataclasses.dataclass(frozen=True, eq=False)
class CubicJTEx(_JTExParameters):
  """CubicJTEx (App. E item 2): x = (L z)^3 + eps, cubed element-wise; else as LinearJTEx.

  Its marginal has no closed form (there is no `exact_log_likelihood`).
  """

  name = 'cubic_jtex'

  def mean(self, z):
    return (np.asarray(z, dtype=np.float64) @ self.scale_tril.T)**3


@dataclasses.dataclass(frozen=True, eq=False)
class Gaussian(_LinearGaussian):
  """Gaussian (App. E item 3): x = z^T A + eps, A `[2, 4]`, eps ~ N(0, sigma2 I), sigma2 = 1e-6."""

  a: np.ndarray = dataclasses.field(default_factory=lambda: _matrix(GAUSSIAN_A))
  sigma2: float = GAUSSIAN_SIGMA2

  name = 'gaussian'
  data_dim = 4

  @property
  def noise_variance(self):
    return np.full(self.data_dim, self.sigma2)

  @property
  def loading(self):
    return self.a


@functools.lru_cache(maxsize=None)
def _load_mobius_weights(path):
  with np.load(path) as arrays:
    num_layers = int(arrays['num_layers'])
    weights = []
    for k in range(num_layers):
      weights += [arrays[f'w{k}'].astype(np.float64), arrays[f'b{k}'].astype(np.float64)]
  for w in weights:
    w.setflags(write=False)
  return tuple(weights)


def mobius_network_weights(path=None):
  """The stored weights of f, `(W1, b1, W2, b2, W3, b3)`, read-only `float64` arrays.

  Shapes `[2, 50], [50], [50, 50], [50], [50, 2], [2]`; f(z) = `mlp(z, weights)`.
  """
  return _load_mobius_weights(os.path.realpath(MOBIUS_ASSET if path is None else path))


@dataclasses.dataclass(frozen=True, eq=False)
class Mobius(GroundTruth):
  """Mobius (App. E item 4): x = f(z) + eps, f the stored network fitted to m(z).

  `weights` are f's `(W1, b1, W2, b2, W3, b3)` (tanh hidden units, linear output; see
  `mlp`); eps ~ N(0, sigma2 I), sigma2 = 1e-5.
  """

  weights: tuple = dataclasses.field(default_factory=mobius_network_weights)
  sigma2: float = MOBIUS_SIGMA2

  name = 'mobius'
  data_dim = 2
  activation = 'tanh'

  @property
  def noise_variance(self):
    return np.full(self.data_dim, self.sigma2)

  def mean(self, z):
    return mlp(np.asarray(z, dtype=np.float64), self.weights)


_MODELS = {'linear_jtex': LinearJTEx, 'cubic_jtex': CubicJTEx, 'gaussian': Gaussian,
           'mobius': Mobius}


def _check_name(name):
  if name not in _MODELS:
    raise errors.UserError(f'synthetic: unknown data set {name!r} (choose from '
                           f'{", ".join(NAMES)})')


def ground_truth(name):
  """The ground-truth model of data set `name` (one of `NAMES`), with its default parameters."""
  _check_name(name)
  return _MODELS[name]()


def dataset_seed(name, index, split):
  """The seed of one split of one data set: distinct for every (name, index, split)."""
  return (_SEED_TAG, zlib.crc32(name.encode('utf-8')), index, SPLITS.index(split))


_INDEX = domains.integer(0, NUM_DATASETS - 1)


@gin.configurable
@domains.checked(name=domains.one_of(*NAMES),
                 index=domains.either(_INDEX, domains.tuple_of(_INDEX)))
def synthetic(split, name='linear_jtex', index=0):
  """Returns one split of one of the synthetic data sets of Appendix E, or of several.

  Given a tuple of K indices, the K data sets come stacked on the second axis, for the
  members of a batched run (`models.synthetic.SyntheticVAE.member_datasets`): slice k is
  exactly the array of `index[k]` alone, and a pipeline that batches or permutes the
  first axis keeps the K data sets' examples together.

  Args:
    split: Python `str`, one of `SPLITS`.
    name: Python `str`, one of `NAMES`: 'linear_jtex', 'cubic_jtex', 'gaussian' or
      'mobius'.
    index: Python `int` in `[0, NUM_DATASETS)`: which of the independent data sets of
      that type; or a tuple of them (`synthetic.index = (0, 1, 2, 3, 4)`).

  Returns:
    x: `np.ndarray`, `float32`, `[500, D]` (D = 4 for 'gaussian', else 2), or
      `[500, K, D]` for K indices; the same array on every call, independent of every
      other (name, index, split).

  Raises:
    UserError: if `split`, `name` or `index` is not one of those above.
  """
  _check_name(name)
  if split not in SPLITS:
    raise errors.UserError(f'synthetic: unknown split {split!r} (choose from '
                           f'{", ".join(SPLITS)})')
  model = ground_truth(name)
  if isinstance(index, (tuple, list)):
    return np.stack([model.sample(NUM_EXAMPLES, dataset_seed(name, int(i), split))[0]
                     for i in index], axis=1)
  x, _ = model.sample(NUM_EXAMPLES, dataset_seed(name, int(index), split))
  return x


def _mlp_loss_and_grad(params, shapes, z, target):
  """Mean squared error of `mlp` (tanh) and its gradient with respect to flat `params`."""
  weights, start = [], 0
  for shape in shapes:
    size = int(np.prod(shape))
    weights.append(params[start:start + size].reshape(shape))
    start += size
  num_layers = len(weights) // 2
  hidden = [z]
  for k in range(num_layers - 1):
    hidden.append(np.tanh(hidden[-1] @ weights[2 * k] + weights[2 * k + 1]))
  residual = hidden[-1] @ weights[-2] + weights[-1] - target
  loss = np.mean(residual**2)
  delta = 2.0 * residual / residual.size
  grads = [None] * len(weights)
  for k in reversed(range(num_layers)):
    grads[2 * k] = hidden[k].T @ delta
    grads[2 * k + 1] = delta.sum(axis=0)
    if k > 0:
      delta = (delta @ weights[2 * k].T) * (1.0 - hidden[k]**2)
  return loss, np.concatenate([g.ravel() for g in grads])


def fit_mobius_network(hidden=MOBIUS_HIDDEN, num_samples=10000, max_iterations=3000,
                       seed=0, test_samples=1000000, test_seed=12345):
  """Fits f (tanh MLP 2 -> hidden -> 2) to m(z) by least squares; deterministic.

  Training: `num_samples` z ~ N(0, I) drawn with `np.random.default_rng(seed)`; targets
  m(z) standardized per output (the scaling is folded back into the last layer);
  Glorot-uniform initial weights from the same generator, zero biases; full-batch
  L-BFGS (`scipy.optimize.minimize`, method 'L-BFGS-B') on the mean squared error for
  `max_iterations` iterations. The defaults produced the stored asset (see the module
  docstring); to rebuild it, `np.savez(MOBIUS_ASSET, **fit['arrays'])`.

  Returns:
    A `dict`: 'weights' (the tuple `(W1, b1, ...)`, `float64`), 'arrays' (the same for
    `np.savez`), 'train_rms_error', 'test_rms_error' (against m(z) on `test_samples`
    fresh z from `test_seed`), 'test_bulk_rms_error' (the same on those with |z| < 3.5),
    'iterations', 'seconds'.
  """
  start_time = time.time()
  rng = np.random.default_rng(seed)
  z = rng.standard_normal((num_samples, LATENT_DIM))
  target = mobius_transform(z)
  offset, scale = target.mean(axis=0), target.std(axis=0)
  widths = (LATENT_DIM,) + tuple(hidden) + (2,)
  shapes, params = [], []
  for fan_in, fan_out in zip(widths[:-1], widths[1:]):
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    shapes += [(fan_in, fan_out), (fan_out,)]
    params += [rng.uniform(-limit, limit, (fan_in, fan_out)).ravel(), np.zeros(fan_out)]
  result = scipy.optimize.minimize(
      _mlp_loss_and_grad, np.concatenate(params), args=(shapes, z, (target - offset) / scale),
      jac=True, method='L-BFGS-B',
      options={'maxiter': max_iterations, 'maxfun': 2 * max_iterations, 'ftol': 0.0,
               'gtol': 0.0})
  weights, begin = [], 0
  for shape in shapes:
    size = int(np.prod(shape))
    weights.append(result.x[begin:begin + size].reshape(shape).copy())
    begin += size
  weights[-2] = weights[-2] * scale
  weights[-1] = weights[-1] * scale + offset
  weights = tuple(weights)

  def rms(z):
    return float(np.sqrt(np.mean((mlp(z, weights) - mobius_transform(z))**2)))

  def bulk_rms(z):
    return rms(z[np.linalg.norm(z, axis=-1) < 3.5])

  z_test = np.random.default_rng(test_seed).standard_normal((test_samples, LATENT_DIM))
  arrays = {'num_layers': np.array(len(weights) // 2)}
  for k in range(len(weights) // 2):
    arrays[f'w{k}'], arrays[f'b{k}'] = weights[2 * k], weights[2 * k + 1]
  return {'weights': weights, 'arrays': arrays, 'train_rms_error': rms(z),
          'test_rms_error': rms(z_test), 'test_bulk_rms_error': bulk_rms(z_test),
          'iterations': int(result.nit),
          'seconds': time.time() - start_time}
