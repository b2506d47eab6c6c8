"""The smooth k-nearest-neighbour two-sample statistic of Djolonga & Krause (2017).

Yacoby et al. (2020, Appendix E) compare a model with the data by it (lower is better).
Pool x_1..x_{n1} and y_1..y_{n2} into n = n1 + n2 points u_i with Euclidean distances d_ij;
for k = 1 and temperature t, under the permutation null (m = sum_ij P_ij):

  P_ij  = exp(-d_ij / t) / sum_{l != i} exp(-d_il / t),   P_ii = 0,
  T     = sum_{i, j in different samples} P_ij            (as t -> 0, the 1-NN count),
  chi_1 = n1 n2 / (n (n - 1)),   chi_2 = 4 (n1 - 1)(n2 - 1) / ((n - 2)(n - 3)),
  E T   = 2 m chi_1,
  Var T = chi_1 (1 - chi_2) sum_i (sum_j P_ij + P_ji)^2 + chi_1 chi_2 sum_ij P_ij^2
          + chi_1 chi_2 sum_ij P_ij P_ji + chi_1 (chi_2 - 4 chi_1) m^2,
  S     = -(T - E T) / sqrt(Var T)     (about 0 for one distribution; lower: more alike).

Chosen here: k = 1, t = 0.1. NumPy (float64): an evaluation metric, not a training loss.
The derivation, the choices and the differences from `torch-two-sample`: docs/methods.md.

#### References

[1] Djolonga, Krause. Learning Implicit Generative Models Using Differentiable Graph Tests.
[2] Friedman, Rafsky. Annals of Statistics 11(2):377-391, 1983.
[3] Schilling. Multivariate two-sample tests based on nearest neighbors. JASA 81(395), 1986.
[4] Yacoby, Pan, Doshi-Velez. Avoiding Problematic Global Optima of VAEs. AABI 2020.
"""

import numpy as np

DEFAULT_K = 1
DEFAULT_TEMPERATURE = 0.1
# Draws evaluated at once by `average_smooth_knn`: 64 draws of 200 points hold 2.6M
# pairwise distances (20 MB in float64).
DEFAULT_DRAWS_PER_CHUNK = 64


def smooth_knn_statistic(x, y, k=DEFAULT_K, temperature=DEFAULT_TEMPERATURE):
  """The smooth 1-NN two-sample statistic S of each pair of samples.

  Args:
    x: array `[..., n1, d]`, the first sample(s) (e.g. data).
    y: array `[..., n2, d]`, the second sample(s) (e.g. model samples); leading dimensions
      broadcast against those of `x`. n1, n2 >= 2 and n1 + n2 >= 4.
    k: number of neighbours; only 1 is implemented.
    temperature: the softmax temperature t > 0, in the units of the data.

  Returns:
    `np.ndarray` `[...]` (float64): S = -(T - E T) / sqrt(Var T) of each pair (see the
    module docstring); lower means more alike.
  """
  if k != 1:
    raise ValueError(f'Only k = 1 is implemented, got k = {k}.')
  if temperature <= 0:
    raise ValueError(f'temperature must be positive, got {temperature}.')
  x = np.asarray(x, np.float64)
  y = np.asarray(y, np.float64)
  n1, n2 = x.shape[-2], y.shape[-2]
  n = n1 + n2
  if n1 < 2 or n2 < 2:
    raise ValueError(f'Each sample needs at least 2 points, got {n1} and {n2}.')
  batch = np.broadcast_shapes(x.shape[:-2], y.shape[:-2])
  u = np.concatenate([np.broadcast_to(x, batch + x.shape[-2:]),
                      np.broadcast_to(y, batch + y.shape[-2:])], axis=-2)
  sq_norms = np.sum(u ** 2, axis=-1)
  sq_dist = sq_norms[..., :, None] + sq_norms[..., None, :] - 2. * (u @ np.swapaxes(u, -1, -2))
  logits = -np.sqrt(np.maximum(sq_dist, 0.)) / temperature
  diagonal = np.eye(n, dtype=bool)
  logits = np.where(diagonal, -np.inf, logits)
  logits -= np.max(logits, axis=-1, keepdims=True)
  probs = np.exp(logits)
  probs /= np.sum(probs, axis=-1, keepdims=True)

  labels = np.arange(n) < n1
  cross = labels[:, None] != labels[None, :]
  t_stat = np.sum(np.where(cross, probs, 0.), axis=(-2, -1))
  total = np.sum(probs, axis=(-2, -1))
  chi_1 = n1 * n2 / (n * (n - 1))
  chi_2 = 4. * (n1 - 1) * (n2 - 1) / ((n - 2) * (n - 3))
  degrees = np.sum(probs, axis=-1) + np.sum(probs, axis=-2)
  var = (chi_1 * (1. - chi_2) * np.sum(degrees ** 2, axis=-1)
         + chi_1 * chi_2 * np.sum(probs ** 2, axis=(-2, -1))
         + chi_1 * chi_2 * np.sum(probs * np.swapaxes(probs, -1, -2), axis=(-2, -1))
         + chi_1 * (chi_2 - 4. * chi_1) * total ** 2)
  mean = 2. * chi_1 * total
  return -(t_stat - mean) / np.sqrt(np.maximum(var, np.finfo(np.float64).tiny))


def average_smooth_knn(data, sample_fn, num_draws, n=100, seed=0, k=DEFAULT_K,
                       temperature=DEFAULT_TEMPERATURE,
                       draws_per_chunk=DEFAULT_DRAWS_PER_CHUNK):
  """The smooth k-NN statistic between data and model, averaged over many draws.

  Each draw takes n data points at random without replacement (independently across
  draws) and n fresh model samples, and computes `smooth_knn_statistic` between them;
  Yacoby et al. (2020) use n = 100 and 20,000 draws. Draws are evaluated
  `draws_per_chunk` at a time.

  Args:
    data: array `[N, d]` of data points, N >= n.
    sample_fn: callable `sample_fn(num_samples, rng)` -> array `[num_samples, d]` of
      independent model samples, with `rng` a `np.random.Generator`.
    num_draws: Python `int`, the number of draws.
    n: Python `int`, points per sample in each draw (both samples).
    seed: Python `int` or `np.random.Generator`, the randomness of the data subsets and
      of `sample_fn`.
    k: number of neighbours (see `smooth_knn_statistic`).
    temperature: softmax temperature (see `smooth_knn_statistic`).
    draws_per_chunk: Python `int`, draws evaluated at once (memory only).

  Returns:
    `dict` with `mean` (Python `float`, the average statistic), `stderr` (its standard
    error over the draws) and `values` (`np.ndarray` `[num_draws]`, the statistic of each
    draw).
  """
  data = np.asarray(data, np.float64)
  if data.ndim != 2 or data.shape[0] < n:
    raise ValueError(f'data must be [N, d] with N >= n = {n}, got shape {data.shape}.')
  rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
  values = []
  for start in range(0, num_draws, draws_per_chunk):
    draws = min(draws_per_chunk, num_draws - start)
    subsets = np.argsort(rng.random((draws, data.shape[0])), axis=-1)[:, :n]
    model = np.asarray(sample_fn(draws * n, rng), np.float64)
    model = model.reshape(draws, n, data.shape[1])
    values.append(smooth_knn_statistic(data[subsets], model, k=k, temperature=temperature))
  values = np.concatenate(values)
  stderr = float(np.std(values, ddof=1) / np.sqrt(num_draws)) if num_draws > 1 else np.nan
  return dict(mean=float(np.mean(values)), stderr=stderr, values=values)
