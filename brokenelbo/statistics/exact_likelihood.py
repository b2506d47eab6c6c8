"""Exact marginal likelihoods of models with a 2-dimensional latent, by adaptive quadrature.

Every model of the LiBI paper's synthetic experiments (Yacoby et al. 2020, Appendix E) is

  z ~ N(0, I_2),    x | z ~ N(f(z), Psi),    Psi = diag(noise_variance),

so log p(x) = log int N(z; 0, I) N(x; f(z), Psi) dz is a 2-D integral, which
`log_marginal_likelihood` computes per point to a stated tolerance, in place of the paper's
importance-sampling estimate (eq. 48). The noise is tiny (Psi = 0.004 on CubicJTEx with
|x| up to 200, 1e-6 on Gaussian), so the integrand is a spike far narrower than the prior
and a grid fixed over z misses it: each point's grid is centred and scaled on its
posterior's modes (`distinct_modes`), then refined until it converges.

Only the mode search can fail silently (a mode that no coarse local maximum leads to);
tests/test_exact_likelihood.py checks the result against closed forms (LinearJTEx,
Gaussian), a brute-force grid (CubicJTEx) and an integrand with two modes.
"""

import time

import numpy as np
from scipy import special

LATENT_DIM = 2

# The coarse grid of step 1 (prior mass beyond |z_i| = 6 is below 2e-9) and how many of
# its local maxima start a search.
_COARSE_LIMIT = 6.
_COARSE_POINTS = 49
_NUM_STARTS = 4
# Levenberg-Marquardt: iterations, and the finite-difference step (relative to |z|).
_MAX_ITERATIONS = 200
_JACOBIAN_STEP = 1e-6
# Two modes closer than this (whitened by the better one's Hessian) are one; a mode whose
# Laplace mass is this many nats below the best one's is dropped.
_SAME_MODE_DISTANCE = 1.
_NEGLIGIBLE_MODE = 40.
# Box sides (step 3): the probe's steps, s_j = 0.25 * 1.25^j whitened units, and drops.
_PROBE_STEPS = 0.25 * 1.25**np.arange(36)
_PROBE_DROP = 35.
_EDGE_DROP = 30.
_WIDEN = 1.5
_MAX_SIDE = 1e4
# Refinement (step 4): intervals per side, first and largest.
_FIRST_INTERVALS = 16
_MAX_INTERVALS = 1024
# Integrand evaluations per call of f (memory: f's activations for this many latents).
_CHUNK = 2**18


def log_joint(z, x, mean_fn, noise_variance):
  """log N(z; 0, I) + log N(x; f(z), Psi) for z `[B, P, 2]` and x `[B, D]`: `[B, P]`."""
  z = np.asarray(z, np.float64)
  mean = mean_fn(z.reshape(-1, LATENT_DIM)).reshape(*z.shape[:-1], -1)
  return _log_density(z, x, mean, noise_variance)


def _log_density(z, x, mean, noise_variance):
  """log N(z; 0, I) + log N(x; mean, Psi), `mean` `[B, P, D]` or broadcasting to it."""
  residual = x[:, np.newaxis, :] - mean
  noise_variance = np.asarray(noise_variance, np.float64)
  log_likelihood = -0.5 * (np.sum(residual**2 / noise_variance, axis=-1)
                           + np.sum(np.log(2 * np.pi * noise_variance)))
  log_prior = -0.5 * (np.sum(z**2, axis=-1) + LATENT_DIM * np.log(2 * np.pi))
  return log_prior + log_likelihood


def _jacobian(mean_fn, z):
  """Central-difference Jacobian of f at z `[B, 2]`: f(z) `[B, D]` and J `[B, D, 2]`."""
  step = _JACOBIAN_STEP * np.maximum(1., np.abs(z))
  points = [z]
  for i in range(LATENT_DIM):
    shift = np.zeros_like(z)
    shift[:, i] = step[:, i]
    points += [z + shift, z - shift]
  values = mean_fn(np.concatenate(points)).reshape(len(points), z.shape[0], -1)
  columns = [(values[1 + 2 * i] - values[2 + 2 * i]) / (2 * step[:, i:i + 1])
             for i in range(LATENT_DIM)]
  return values[0], np.stack(columns, axis=-1)


def _objective(z, x, mean, noise_variance):
  """-g(z) up to a constant: 1/2 |z|^2 + 1/2 (x - f(z))^T Psi^-1 (x - f(z)), `[B]`."""
  return 0.5 * (np.sum(z**2, axis=-1) + np.sum((x - mean)**2 / noise_variance, axis=-1))


def _gauss_newton(z, x, mean_fn, noise_variance):
  """At z `[B, 2]`: f(z), the gradient of -g and its Gauss-Newton Hessian I + J^T Psi^-1 J."""
  mean, jacobian = _jacobian(mean_fn, z)
  scaled = jacobian / noise_variance[:, np.newaxis]
  gradient = z - np.einsum('bdi,bd->bi', scaled, x - mean)
  hessian = np.eye(LATENT_DIM) + np.einsum('bdi,bdj->bij', scaled, jacobian)
  return mean, gradient, hessian


def find_modes(x, starts, mean_fn, noise_variance):
  """Levenberg-Marquardt on -log p(x, z) from `starts` `[B, 2]` (one per row of x `[B, D]`).

  Returns:
    modes `[B, 2]`, their log p(x, z) `[B]` and Gauss-Newton Hessians `[B, 2, 2]`.
  """
  noise_variance = np.asarray(noise_variance, np.float64)
  z = np.array(starts, np.float64)
  damping = np.full(z.shape[0], 1e-3)
  active = np.ones(z.shape[0], bool)
  for _ in range(_MAX_ITERATIONS):
    idx = np.flatnonzero(active)
    if idx.size == 0:
      break
    mean, gradient, hessian = _gauss_newton(z[idx], x[idx], mean_fn, noise_variance)
    diagonal = hessian * np.eye(LATENT_DIM)
    step = -np.linalg.solve(hessian + damping[idx, None, None] * diagonal,
                            gradient[..., np.newaxis])[..., 0]
    before = _objective(z[idx], x[idx], mean, noise_variance)
    after = _objective(z[idx] + step, x[idx], mean_fn(z[idx] + step), noise_variance)
    better = after < before
    z[idx[better]] += step[better]
    damping[idx] = np.clip(np.where(better, damping[idx] / 3., damping[idx] * 4.), 1e-12,
                           1e12)
    # Converged: a step that changes -g by less than 1e-15 (relative) or 1e-18 nats.
    size = np.einsum('bi,bij,bj->b', step, hessian, step)
    small = (size < 1e-18) | (better & (before - after <= 1e-15 * (1. + before)))
    active[idx[small | (damping[idx] >= 1e12)]] = False
  _, _, hessian = _gauss_newton(z, x, mean_fn, noise_variance)
  value = log_joint(z[:, np.newaxis], x, mean_fn, noise_variance)[:, 0]
  return z, value, hessian


def _coarse_starts(x, mean_fn, noise_variance):
  """The `_NUM_STARTS` best local maxima of log p(x, z) on the coarse grid: `[N, K, 2]`."""
  axis = np.linspace(-_COARSE_LIMIT, _COARSE_LIMIT, _COARSE_POINTS)
  grid = np.stack(np.meshgrid(axis, axis, indexing='ij'), axis=-1).reshape(-1, LATENT_DIM)
  mean = mean_fn(grid)                                       # [G, D], shared by every x.
  rows = max(1, _CHUNK // grid.shape[0])
  values = np.concatenate([_log_density(grid, x[i:i + rows], mean, noise_variance)
                           for i in range(0, len(x), rows)])
  values = values.reshape(-1, _COARSE_POINTS, _COARSE_POINTS)
  padded = np.pad(values, ((0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
  is_max = np.ones(values.shape, bool)
  for di in (-1, 0, 1):
    for dj in (-1, 0, 1):
      if di or dj:
        neighbour = padded[:, 1 + di:1 + di + _COARSE_POINTS, 1 + dj:1 + dj + _COARSE_POINTS]
        is_max &= values >= neighbour
  ranked = np.where(is_max, values, -np.inf).reshape(len(x), -1)
  best = np.argsort(-ranked, axis=1)[:, :_NUM_STARTS]
  starts = grid[best]                                       # [N, K, 2]
  # Where fewer than K local maxima exist, repeat the best one.
  valid = np.take_along_axis(ranked, best, axis=1) > -np.inf
  return np.where(valid[..., np.newaxis], starts, starts[:, :1])


def _laplace_log_mass(value, hessian):
  return value + np.log(2 * np.pi) - 0.5 * np.linalg.slogdet(hessian)[1]


def distinct_modes(x, mean_fn, noise_variance):
  """Every mode of log p(x, z) that the coarse grid leads to, per row of x `[N, D]`.

  Returns:
    `dict` of arrays: loc `[N, K, 2]`, hessian `[N, K, 2, 2]`, log_mass `[N, K]` (the
    Laplace mass; -inf for padding), K the most modes of any point, the best one first.
  """
  starts = _coarse_starts(x, mean_fn, noise_variance)
  num, k = starts.shape[:2]
  modes, values, hessians = find_modes(np.repeat(x, k, axis=0), starts.reshape(-1, 2),
                                       mean_fn, noise_variance)
  modes, hessians = modes.reshape(num, k, 2), hessians.reshape(num, k, 2, 2)
  masses = _laplace_log_mass(values, hessians.reshape(-1, 2, 2)).reshape(num, k)
  kept = []
  for n in range(num):
    chosen = []
    for j in np.argsort(-masses[n]):
      if masses[n, j] < masses[n].max() - _NEGLIGIBLE_MODE:
        continue
      if all(_whitened_distance(modes[n, j], modes[n, i], hessians[n, i])
             > _SAME_MODE_DISTANCE for i in chosen):
        chosen.append(j)
    kept.append(chosen)
  width = max(len(c) for c in kept)
  loc = np.zeros((num, width, 2))
  hessian = np.broadcast_to(np.eye(2), (num, width, 2, 2)).copy()
  log_mass = np.full((num, width), -np.inf)
  for n, chosen in enumerate(kept):
    loc[n, :len(chosen)] = modes[n, chosen]
    hessian[n, :len(chosen)] = hessians[n, chosen]
    log_mass[n, :len(chosen)] = masses[n, chosen]
  return dict(loc=loc, hessian=hessian, log_mass=log_mass)


def _whitened_distance(a, b, hessian):
  delta = a - b
  return float(np.sqrt(delta @ hessian @ delta))


class _Pieces:
  """The pieces of step 2: one per (point, mode), with the whitening of step 3."""

  def __init__(self, x, modes):
    self.x = x
    self.modes = modes
    self.point, self.mode = np.nonzero(np.isfinite(modes['log_mass']))
    covariance = np.linalg.inv(modes['hessian'][self.point, self.mode])
    self.scale = np.linalg.cholesky(0.5 * (covariance + np.swapaxes(covariance, -1, -2)))
    self.loc = modes['loc'][self.point, self.mode]
    self.log_det = np.log(self.scale[:, 0, 0] * self.scale[:, 1, 1])
    # Laplace Gaussians of every mode of each point: log pi_j N(z; m_j, H_j^-1).
    self.chol_precision = np.linalg.cholesky(modes['hessian'])
    self.multimodal = np.sum(np.isfinite(modes['log_mass']), axis=1) > 1

  def __len__(self):
    return len(self.point)

  def log_integrand(self, pieces, t, mean_fn, noise_variance):
    """log of the whitened integrand of `pieces` (indices) at t `[E, P, 2]`: `[E, P]`."""
    z = self.loc[pieces, np.newaxis] + np.einsum('eij,epj->epi', self.scale[pieces], t)
    points = self.point[pieces]
    value = log_joint(z, self.x[points], mean_fn, noise_variance) + self.log_det[pieces, None]
    several = self.multimodal[points]
    if np.any(several):
      value[several] += self._log_weight(pieces[several], z[several])
    return value

  def _log_weight(self, pieces, z):
    """log w_k(z) of the partition of unity (step 2), for z `[E, P, 2]`."""
    points = self.point[pieces]
    delta = z[:, :, np.newaxis, :] - self.modes['loc'][points][:, np.newaxis]  # [E,P,K,2]
    white = np.einsum('ekji,epkj->epki', self.chol_precision[points], delta)
    log_det = np.sum(np.log(np.diagonal(self.chol_precision[points], axis1=-2, axis2=-1)),
                     axis=-1)                                                  # [E, K]
    terms = (self.modes['log_mass'][points][:, np.newaxis]
             + log_det[:, np.newaxis] - 0.5 * np.sum(white**2, axis=-1))      # [E, P, K]
    own = np.take_along_axis(terms, self.mode[pieces][:, None, None], axis=-1)[..., 0]
    return own - special.logsumexp(terms, axis=-1)


def _in_chunks(pieces, points_per_piece, fn):
  """`fn(chunk)` over chunks of `pieces` with at most `_CHUNK` evaluations each."""
  size = max(1, _CHUNK // points_per_piece)
  return np.concatenate([fn(pieces[i:i + size]) for i in range(0, len(pieces), size)])


def _probe_box(state, mean_fn, noise_variance):
  """Step 3: box sides `[E, 4]` (-t1, +t1, -t2, +t2) where the integrand has fallen off."""
  directions = np.array([[-1., 0.], [1., 0.], [0., -1.], [0., 1.]])
  offsets = (directions[:, np.newaxis, :] * _PROBE_STEPS[:, np.newaxis]).reshape(-1, 2)
  t = np.concatenate([np.zeros((1, 2)), offsets])

  def probe(chunk):
    return state.log_integrand(chunk, np.broadcast_to(t, (len(chunk), *t.shape)), mean_fn,
                               noise_variance)

  values = _in_chunks(np.arange(len(state)), len(t), probe)
  peak = np.max(values, axis=1, keepdims=True)
  along = values[:, 1:].reshape(len(state), 4, len(_PROBE_STEPS))
  above = along >= peak[..., np.newaxis] - _PROBE_DROP
  # The step after the last one still above the drop (the first if none is).
  last = len(_PROBE_STEPS) - 1 - np.argmax(above[..., ::-1], axis=-1)
  last = np.where(np.any(above, axis=-1), last, -1)
  return _PROBE_STEPS[np.minimum(last + 1, len(_PROBE_STEPS) - 1)]


def _trapezoid(state, pieces, box, intervals, mean_fn, noise_variance):
  """The trapezoid rule on each piece's box: log integral `[E]` and each side's edge
  maximum minus the grid's maximum `[E, 4]`."""
  u = np.linspace(0., 1., intervals + 1)
  lower, upper = -box[:, [0, 2]], box[:, [1, 3]]                       # [E, 2]
  axes = lower[:, :, np.newaxis] + (upper - lower)[:, :, np.newaxis] * u  # [E, 2, n+1]
  t = np.stack(np.broadcast_arrays(axes[:, 0, :, np.newaxis], axes[:, 1, np.newaxis, :]),
               axis=-1).reshape(len(pieces), -1, 2)
  values = state.log_integrand(pieces, t, mean_fn, noise_variance).reshape(
      len(pieces), intervals + 1, intervals + 1)
  weights = np.ones(intervals + 1)
  weights[[0, -1]] = 0.5
  log_weights = np.log(weights[:, np.newaxis] * weights[np.newaxis, :])
  spacing = (upper - lower) / intervals
  log_integral = (special.logsumexp(values + log_weights, axis=(1, 2))
                  + np.log(spacing[:, 0] * spacing[:, 1]))
  peak = np.max(values, axis=(1, 2))
  edges = np.stack([values[:, 0, :].max(axis=1), values[:, -1, :].max(axis=1),
                    values[:, :, 0].max(axis=1), values[:, :, -1].max(axis=1)], axis=1)
  return np.stack([log_integral, *(edges - peak[:, np.newaxis]).T], axis=1)


def _refine(state, box, tolerance, mean_fn, noise_variance):
  """Step 4 for every piece: log integral, last difference, intervals, evaluations."""
  num = len(state)
  result, previous = np.full(num, np.nan), np.full(num, np.nan)
  difference, intervals = np.full(num, np.inf), np.full(num, _FIRST_INTERVALS)
  evaluations = np.zeros(num, np.int64)
  active = np.ones(num, bool)
  while np.any(active):
    for n in np.unique(intervals[active]):
      pieces = np.flatnonzero(active & (intervals == n))
      out = _in_chunks(pieces, (n + 1)**2, lambda c, n=n: _trapezoid(
          state, c, box[c], n, mean_fn, noise_variance))
      evaluations[pieces] += (n + 1)**2
      wide = (out[:, 1:] > -_EDGE_DROP) & (box[pieces] < _MAX_SIDE)
      widen = np.any(wide, axis=1)
      box[pieces] *= np.where(wide, _WIDEN, 1.)
      previous[pieces[widen]] = np.nan          # A new box: start its comparison again.
      ok = pieces[~widen]
      same = out[~widen, 0] == previous[ok]   # Also both -inf: nothing to refine.
      difference[ok] = np.where(same, 0., np.abs(out[~widen, 0] - previous[ok]))
      result[ok] = out[~widen, 0]
      previous[ok] = out[~widen, 0]
      done = difference[ok] < tolerance
      active[ok[done]] = False
      grow = ok[~done]
      stop = intervals[grow] >= _MAX_INTERVALS
      active[grow[stop]] = False
      intervals[grow[~stop]] *= 2
  return result, difference, evaluations


def log_marginal_likelihood(x, mean_fn, noise_variance, tolerance=1e-4):
  """log p(x) = log int N(z; 0, I_2) N(x; f(z), diag(noise_variance)) dz, per row of x.

  Per point x:

  1. Modes (`distinct_modes`): g(z) = log p(x, z) on a coarse grid over [-6, 6]^2; from
     its best local maxima, Levenberg-Marquardt on -g (central-difference Jacobians J of
     f), which gives each distinct mode m_k and its Gauss-Newton Hessian
     H_k = I + J^T Psi^-1 J.
  2. Partition: with several modes, the integrand is split smoothly by the weights
     w_k(z) = pi_k N(z; m_k, H_k^-1) / sum_j pi_j N(z; m_j, H_j^-1), pi_k the Laplace
     mass, and each piece is integrated around its own mode (one mode: w = 1).
  3. Box: each piece in whitened coordinates z = m_k + C_k t, C_k C_k^T = H_k^-1, on a
     box whose sides are where the integrand, probed along the axes, falls `_PROBE_DROP`
     nats below its peak; a side whose edge still holds more than e^-`_EDGE_DROP` of the
     peak is widened by half, and the level repeated.
  4. Refinement: the trapezoid rule with 16, 32, 64, ... intervals per side (exponentially
     convergent for a smooth integrand that vanishes at the box's edge) until two
     successive levels agree within `tolerance` nats; the finer one is returned.

  Args:
    x: array `[N, D]`.
    mean_fn: f, a callable from `np.ndarray` `float64` `[M, 2]` to `[M, D]`, vectorised.
    noise_variance: array `[D]`, the diagonal of Psi.
    tolerance: Python `float`, nats: refinement stops when two successive levels of every
      piece of a point agree within it.

  Returns:
    `dict`: log_likelihood `np.ndarray` `float64` `[N]` (nats); error `[N]`, the last
    difference between refinement levels (the largest over the point's pieces);
    converged `bool` `[N]` (error < tolerance within `_MAX_INTERVALS` intervals per side);
    num_modes `[N]`; evaluations `[N]` (of f, by the grids); seconds.
  """
  start = time.time()
  x = np.asarray(x, np.float64)
  noise_variance = np.asarray(noise_variance, np.float64)
  modes = distinct_modes(x, mean_fn, noise_variance)
  state = _Pieces(x, modes)
  box = _probe_box(state, mean_fn, noise_variance)
  log_integral, difference, evaluations = _refine(state, box, tolerance, mean_fn,
                                                  noise_variance)
  num = len(x)
  log_likelihood = np.full(num, -np.inf)
  error = np.zeros(num)
  grid_evaluations = np.zeros(num, np.int64)
  np.logaddexp.at(log_likelihood, state.point, log_integral)
  np.maximum.at(error, state.point, difference)
  np.add.at(grid_evaluations, state.point, evaluations)
  return dict(log_likelihood=log_likelihood, error=error, converged=error < tolerance,
              num_modes=np.sum(np.isfinite(modes['log_mass']), axis=1),
              evaluations=grid_evaluations, seconds=time.time() - start)
