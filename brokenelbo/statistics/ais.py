"""Annealed importance sampling (AIS) of the rate-distortion curve of a fixed decoder.

For a decoder d(x|z) and marginal m(z), the encoder that minimises R + beta D for an image
x is p_beta(z|x) = m(z) d(x|z)^beta / Z_beta(x), Z_beta(x) = E_m[d(x|z)^beta], with

  D_beta = E_{p_beta}[-log d(x|z)],   R_beta = KL(p_beta || m) = -log Z_beta - beta D_beta,

so R_1 + D_1 = -log p(x) and d log Z_beta / d beta = -D_beta. One AIS run (Neal 2001) from
m(z) along f_beta = m d^beta gives the whole curve (Huang et al. 2020), each transition one
HMC step; an encoder trained on D + beta' R meets it at beta = 1 / beta'. On simulated
pairs (z ~ m, x ~ d(x|z)), z is an exact posterior draw, and a reverse chain from it bounds
log p(x) from above as the forward chain does from below (BDMC, Grosse et al. 2015).

Only `decoder(z).log_prob(x)` (z `[B, latent]`, a `[B]` result), `marginal.log_prob` and
`marginal.sample` are used. `seed` is a shape-`[2]` integer `Tensor` or a Python `int` s
for `[s, 0]`; batch b of images runs on `stateless_fold_in(seed, b)`.

#### References

[1] Neal. Annealed importance sampling. Statistics and Computing, 2001.
[2] Grosse, Ghahramani, Adams. Sandwiching the marginal likelihood using bidirectional
    Monte Carlo. arXiv:1511.02543, 2015.
[3] Wu, Burda, Salakhutdinov, Grosse. On the quantitative analysis of decoder-based
    generative models. ICLR 2017.
[4] Huang, Makhzani, Cao, Grosse. Evaluating lossy compression rates of deep generative
    models. ICML 2020. Code: github.com/huangsicong/rate_distortion.
[5] Neal. MCMC using Hamiltonian dynamics. Handbook of Markov Chain Monte Carlo, 2011.
"""

import collections

import numpy as np
import tensorflow as tf

from brokenelbo.statistics import information

# Settings, after Huang et al.'s repository (`hparams/defaults.py`, `algorithms/hmc.py`):
# 20 leapfrog steps per HMC transition, one transition per intermediate distribution, and
# step sizes multiplied by 1.02 after a transition whose acceptance beat 0.65 and by 0.98
# otherwise, within [1e-4, 0.5] (see `_Annealer` for whose acceptance).
DEFAULT_NUM_LEAPFROG_STEPS = 20
DEFAULT_TARGET_ACCEPTANCE = 0.65
ADAPTATION_FACTORS = (1.02, 0.98)
STEP_SIZE_RANGE = (1e-4, 0.5)
# Their chains start at 0.01 and run 5000 to 1.6 million steps; a schedule of a few hundred
# steps would end its adaptation below 0.01 * 1.02^T, so ours start at 0.1, a tenth of the
# width of m(z) = N(0, I) where every chain starts.
DEFAULT_INITIAL_STEP_SIZE = 0.1
# Their sigmoid schedule's radius when none is given (`utils/anneal_schedules.py`); their
# rate-distortion runs set 10, for beta up to 3333 and beyond.
DEFAULT_RADIUS = 4.
# The stored betas, the curve's points: the 1-2-5 series from 0.1 to 10, where the encoders
# trained on D + beta' R with beta' from 0.1 to 10 meet it (at beta = 1 / beta').
DEFAULT_BETAS = (0.1, 0.2, 0.5, 1., 2., 5., 10.)
# Intermediate distributions and chains per image: Huang et al. use 40 chains and 5000 or
# more distributions on a GPU; fewer here, as a CPU pays per gradient of the decoder
# (`evaluation.rd_curve` gives measured costs).
DEFAULT_NUM_STEPS = 500
DEFAULT_NUM_CHAINS = 16
# Unweighted chains per image whose acceptance drives its step size (`_Annealer`).
DEFAULT_NUM_PILOT_CHAINS = 2
# Images annealed at once (memory only, and part of the seeding): chains x images latents
# go through the decoder in one call.
DEFAULT_BATCH_SIZE = 50

# One batch of chain states: z `[C, N, latent]`, log m(z) and log d(x|z) `[C, N]`, and their
# gradients with respect to z.
_Point = collections.namedtuple('_Point', ['z', 'log_m', 'log_d', 'grad_m', 'grad_d'])
# The chains as they move: states, log-weights `[C, N]` (float64), each image's step size
# `[N]`.
_Chains = collections.namedtuple('_Chains', ['point', 'log_w', 'step_size'])
# The HMC settings (see the module's defaults).
_Sampler = collections.namedtuple('_Sampler', ['num_chains', 'num_pilot_chains',
                                               'num_leapfrog_steps', 'target_acceptance',
                                               'initial_step_size'])


def sigmoid_schedule(num_steps, max_beta=1., radius=DEFAULT_RADIUS):
  """The sigmoid schedule of inverse temperatures, `num_steps + 1` of them from 0 to `max_beta`.

    beta_t = max_beta (s_t - s_0) / (s_T - s_0),  s_t = sigmoid(radius (2 t / T - 1)),

  (Wu et al. 2017's code, which Huang et al.'s `utils/anneal_schedules.py` follows): dense
  near both ends, and near 0 geometric, beta_t ~ exp(2 radius t / T), where the path moves
  fastest for a diffuse m(z).

  Args:
    num_steps: Python `int` >= 1, the number T of transitions (intermediate distributions).
    max_beta: Python `float` > 0, the last inverse temperature.
    radius: Python `float` > 0; small radii tend to a linear schedule.

  Returns:
    `np.ndarray [T + 1]`, float64, increasing from exactly 0 to exactly `max_beta`.
  """
  if num_steps < 1:
    raise ValueError(f'num_steps must be >= 1, got {num_steps}')
  s = 1. / (1. + np.exp(-radius * np.linspace(-1., 1., num_steps + 1)))
  schedule = max_beta * (s - s[0]) / (s[-1] - s[0])
  schedule[0], schedule[-1] = 0., max_beta
  return schedule


def annealing_schedule(num_steps, betas=DEFAULT_BETAS, radius=DEFAULT_RADIUS):
  """The sigmoid schedule to the largest of `betas` and 1, with every stored beta in it.

  The stored betas are `betas` and 1 (where log Z is log p(x)); each that the sigmoid
  schedule of `num_steps` transitions misses is inserted, one more transition each.

  Args:
    num_steps: Python `int` >= 1, transitions of the sigmoid schedule.
    betas: sequence of Python `float`s > 0, the inverse temperatures to store.
    radius: Python `float`, the sigmoid schedule's radius.

  Returns:
    schedule: `np.ndarray [T + 1]`, float64, increasing from 0 (T >= `num_steps`).
    stored: `np.ndarray [S]` of `int`, the indices of the stored betas in `schedule`,
      increasing (so `schedule[stored]` is `sorted(set(betas) | {1})`).
  """
  stored_betas = np.unique(np.concatenate([np.asarray(betas, np.float64).reshape(-1), [1.]]))
  if stored_betas[0] <= 0. or not np.all(np.isfinite(stored_betas)):
    raise ValueError(f'betas must be finite and > 0, got {betas}')
  schedule = np.union1d(sigmoid_schedule(num_steps, stored_betas[-1], radius), stored_betas)
  return schedule, np.searchsorted(schedule, stored_betas)


def rate_distortion_curve(decoder, marginal, images, seed, betas=DEFAULT_BETAS,
                          num_steps=DEFAULT_NUM_STEPS, num_chains=DEFAULT_NUM_CHAINS,
                          num_pilot_chains=DEFAULT_NUM_PILOT_CHAINS,
                          num_leapfrog_steps=DEFAULT_NUM_LEAPFROG_STEPS,
                          target_acceptance=DEFAULT_TARGET_ACCEPTANCE,
                          initial_step_size=DEFAULT_INITIAL_STEP_SIZE, radius=DEFAULT_RADIUS,
                          step_sizes=None, batch_size=DEFAULT_BATCH_SIZE):
  """log Z_beta, D_beta and R_beta of every image at every stored beta, by one AIS run.

  `num_chains` chains per image start at z ~ m(z) and follow `annealing_schedule`: step t
  adds (beta_t - beta_{t-1}) log d(x|z) to a chain's log-weight, then takes one HMC step
  that leaves f_{beta_t} invariant. At a stored beta, with w_c the chains' weights and z_c
  their states (as Huang et al.'s `algorithms/rate_distortion.py`):

    log Z = log mean_c w_c,   D = sum_c w_c [-log d(x|z_c)] / sum_c w_c,   R = -log Z - beta D,

  with standard errors over chains (`summarize`), which miss AIS's bias: log Z is low in
  expectation, less so as `num_steps` grows. Each image's step size adapts to the
  acceptance of `num_pilot_chains` unweighted chains (`_Annealer`), or is given by
  `step_sizes` (e.g. a previous run's, as in Huang et al.'s second round).

  Args:
    decoder: callable `decoder(z)` -> `tfd.Distribution` d(x|z), for z `[B, latent]`.
    marginal: `tfd.Distribution` m(z).
    images: array `[N, ...]` of images x.
    seed: shape-`[2]` integer `Tensor` or Python `int` (see the module docstring).
    betas: sequence of Python `float`s > 0, the stored betas (1 is always added).
    num_steps: Python `int`, transitions of the sigmoid schedule.
    num_chains: Python `int` >= 2, weighted chains per image.
    num_pilot_chains: Python `int` >= 1, unweighted chains per image (none with `step_sizes`).
    num_leapfrog_steps: Python `int`, leapfrog steps per HMC transition.
    target_acceptance: Python `float` in (0, 1), the acceptance the step sizes adapt to.
    initial_step_size: Python `float`, every image's first step size.
    radius: Python `float`, the sigmoid schedule's radius.
    step_sizes: optional array `[T, N]`, each image's step size at each transition.
    batch_size: Python `int`, images annealed at once (part of the seeding).

  Returns:
    `dict` of numpy arrays, nats: betas `[S]` (sorted); log_normalizer, distortion, rate and
    effective_chains `[S, N]`, the first three with their `_stderr` (`summarize`);
    log_likelihood and log_likelihood_stderr `[N]` (log Z at beta = 1); schedule `[T + 1]`;
    step_sizes and acceptance `[T, N]` (the weighted chains' mean acceptance probability).
  """
  schedule, stored = annealing_schedule(num_steps, betas, radius)
  sampler = _sampler(num_chains, num_pilot_chains, num_leapfrog_steps, target_acceptance,
                     initial_step_size)
  annealer = _Annealer(decoder, marginal, sampler, adapt=step_sizes is None)
  parts = []
  for batch, x in information.batches(images, batch_size):
    batch_seed = _fold(information.base_seed(seed), batch)
    frozen = None if step_sizes is None else _slice_columns(step_sizes, batch, batch_size)
    chains = annealer.start_from_marginal(x, _fold(batch_seed, 0))
    parts.append(annealer.run(x, chains, schedule, stored, _fold(batch_seed, 1), frozen))
  log_w, log_d, used_steps, acceptance = (np.concatenate(p, axis=-1) for p in zip(*parts))
  result = summarize(log_w, log_d, schedule[stored])
  unit = int(np.flatnonzero(result['betas'] == 1.)[0])
  result.update(log_likelihood=result['log_normalizer'][unit],
                log_likelihood_stderr=result['log_normalizer_stderr'][unit],
                schedule=schedule, step_sizes=used_steps, acceptance=acceptance)
  return result


def bidirectional_bounds(decoder, marginal, images, latents, seed, num_steps=DEFAULT_NUM_STEPS,
                         num_chains=DEFAULT_NUM_CHAINS,
                         num_pilot_chains=DEFAULT_NUM_PILOT_CHAINS,
                         num_leapfrog_steps=DEFAULT_NUM_LEAPFROG_STEPS,
                         target_acceptance=DEFAULT_TARGET_ACCEPTANCE,
                         initial_step_size=DEFAULT_INITIAL_STEP_SIZE, radius=DEFAULT_RADIUS,
                         batch_size=DEFAULT_BATCH_SIZE):
  """Stochastic lower and upper bounds on log p(x) by bidirectional Monte Carlo (BDMC).

  For images simulated with the latents that drew them (`simulate`), each latent is an
  exact posterior draw. Along the sigmoid schedule from 0 to 1 (Grosse et al. 2015):

    forward:  z ~ m(z), annealed up to beta = 1;         lower = log mean_c w_c
    reverse:  z = the exact latent, annealed down to 0;  upper = -log mean_c w'_c,
              log w'_c = sum_t (beta_{t-1} - beta_t) log d(x|z_t)

  E[lower] <= log p(x) <= E[upper] (Jensen, as E w = p(x) and E w' = 1 / p(x)), so the
  expected gap bounds the expected error of either. The reverse chains take the forward
  run's step sizes, each at the same beta, and all chains of an image start from its one
  latent (as Huang et al.'s `algorithms/ais.py`).

  Args:
    decoder, marginal: as in `rate_distortion_curve`.
    images: array `[N, ...]`, images simulated from the model.
    latents: array `[N, latent]`, the latents that drew them.
    seed: shape-`[2]` integer `Tensor` or Python `int` (see the module docstring).
    num_steps, num_chains, num_pilot_chains, num_leapfrog_steps, target_acceptance,
      initial_step_size, radius, batch_size: as in `rate_distortion_curve`.

  Returns:
    `dict`: lower, lower_stderr, upper, upper_stderr `np.ndarray [N]` (nats; the upper
    standard errors are the chains' spread given the image's one latent, blind to that
    latent's draw); lower_mean, upper_mean and gap (of upper - lower), means over images
    with their `_stderr` over images, which see it; forward_acceptance, reverse_acceptance.
  """
  schedule = sigmoid_schedule(num_steps, 1., radius)
  sampler = _sampler(num_chains, num_pilot_chains, num_leapfrog_steps, target_acceptance,
                     initial_step_size)
  forward = _Annealer(decoder, marginal, sampler, adapt=True)
  reverse = _Annealer(decoder, marginal, sampler, adapt=False)
  latents = np.asarray(latents)
  parts = []
  for batch, x in information.batches(images, batch_size):
    z = tf.constant(latents[batch * batch_size:batch * batch_size + x.shape[0]])
    parts.append(_both_ways(forward, reverse, x, z, schedule,
                            _fold(information.base_seed(seed), batch)))
  log_w, log_w_reverse, accepted, accepted_reverse = (
      np.concatenate(p, axis=-1) for p in zip(*parts))
  lower, upper = (summarize(w, np.zeros_like(w), [1.]) for w in (log_w, log_w_reverse))
  result = dict(lower=lower['log_normalizer'][0], lower_stderr=lower['log_normalizer_stderr'][0],
                upper=-upper['log_normalizer'][0], upper_stderr=upper['log_normalizer_stderr'][0],
                forward_acceptance=float(accepted.mean()),
                reverse_acceptance=float(accepted_reverse.mean()))
  for name, values in (('lower_mean', result['lower']), ('upper_mean', result['upper']),
                       ('gap', result['upper'] - result['lower'])):
    result[name], result[f'{name}_stderr'] = float(values.mean()), _stderr(values)
  return result


def _both_ways(forward, reverse, x, z, schedule, seed):
  """One batch's forward and reverse log-weights `[1, C, N]` and acceptances `[T, N]`: the
  reverse chains from z `[N, latent]`, transition t at the forward's step sizes for the
  same beta (at beta_0, which the forward run never targets, its first)."""
  end = [len(schedule) - 1]
  chains = forward.start_from_marginal(x, _fold(seed, 0))
  log_w, _, steps, accepted = forward.run(x, chains, schedule, end, _fold(seed, 1))
  frozen = np.concatenate([steps[-2::-1], steps[:1]])
  log_w_reverse, _, _, accepted_reverse = reverse.run(
      x, reverse.start_from(x, z), schedule[::-1], end, _fold(seed, 2), frozen)
  return log_w, log_w_reverse, accepted, accepted_reverse


def simulate(decoder, marginal, num_examples, seed):
  """Draws z ~ m(z) and x ~ d(x|z): images with an exact posterior draw each, for BDMC.

  Args:
    decoder, marginal: as in `rate_distortion_curve`.
    num_examples: Python `int`, the number of pairs.
    seed: shape-`[2]` integer `Tensor` or Python `int`.

  Returns:
    images `np.ndarray [num_examples, ...]` (floating, as the decoder's samples or cast to
    the latents' dtype), latents `np.ndarray [num_examples, latent]`.
  """
  base = information.base_seed(seed)
  z = marginal.sample(num_examples, seed=_fold(base, 0))
  x = decoder(z).sample(seed=_fold(base, 1))
  if not x.dtype.is_floating:
    x = tf.cast(x, z.dtype)
  return x.numpy(), z.numpy()


def summarize(log_weights, log_likelihoods, betas):
  """Each image's log Z, D and R at each stored beta, from its chains' weights and states.

  With u_c = w_c / mean_c w_c the chains' normalised weights (mean 1) and f_c = -log
  d(x|z_c) the chains' distortions, for C chains:

    log Z = log mean_c w_c,   D = mean_c u_c f_c,   R = -log Z - beta D,

  and each standard error is that of the mean of its first-order (delta-method) terms,
  sqrt(sum_c t_c^2 / (C (C - 1))):

    t_c(log Z) = u_c - 1,   t_c(D) = u_c (f_c - D),   t_c(R) = -(u_c - 1) - beta u_c (f_c - D).

  effective_chains = C^2 / sum_c u_c^2 is Kish's effective sample size of the weights.

  Args:
    log_weights: array `[S, C, N]`, the chains' log-weights at S stored betas.
    log_likelihoods: array `[S, C, N]`, log d(x|z) of the chains' states there.
    betas: array `[S]`, the stored betas.

  Returns:
    `dict` of float64 `np.ndarray`s: betas `[S]`; log_normalizer, distortion, rate,
    log_normalizer_stderr, distortion_stderr, rate_stderr, effective_chains `[S, N]`.
  """
  log_w = np.asarray(log_weights, np.float64)
  distortions = -np.asarray(log_likelihoods, np.float64)
  betas = np.asarray(betas, np.float64).reshape(-1)
  num_chains = log_w.shape[1]
  peak = log_w.max(axis=1, keepdims=True)
  total = np.exp(log_w - peak).sum(axis=1, keepdims=True)
  u = num_chains * np.exp(log_w - peak) / total
  log_normalizer = (peak + np.log(total / num_chains))[:, 0]
  distortion = (u * distortions).mean(axis=1)
  deviation = u * (distortions - distortion[:, np.newaxis])
  terms = dict(log_normalizer=u - 1., distortion=deviation,
               rate=-(u - 1.) - betas[:, np.newaxis, np.newaxis] * deviation)
  result = dict(betas=betas, log_normalizer=log_normalizer, distortion=distortion,
                rate=-log_normalizer - betas[:, np.newaxis] * distortion,
                effective_chains=num_chains**2 / np.square(u).sum(axis=1))
  for name, t in terms.items():
    result[f'{name}_stderr'] = np.sqrt(np.square(t).sum(axis=1)
                                       / (num_chains * (num_chains - 1)))
  return result


class _Annealer:
  """Compiled AIS for one decoder, marginal and sampler, for a batch of N images.

  The chains `[C + P, N, latent]` are the C weighted chains of every image and, when the
  step sizes adapt, P pilot chains: each image's step size `[N]` is multiplied by 1.02
  after a transition whose mean acceptance probability over its pilot chains beat the
  target and by 0.98 otherwise, within `STEP_SIZE_RANGE`. The pilots' weights are never
  used, so the weighted chains' kernels depend on no weighted chain's past and each of
  their weights is exactly AIS's. (Adapting each chain on its own acceptance, as Huang et
  al.'s `algorithms/hmc.py` does, makes its kernel depend on its own past: on the tests'
  linear-Gaussian model that biased log Z upwards by about 0.07 nats, 2 standard errors
  of 256 chains; their repository reruns with the step sizes frozen to avoid it.)
  Without adaptation every chain of an image takes the step sizes it is given.
  """

  def __init__(self, decoder, marginal, sampler, adapt):
    self._decoder, self._marginal, self._sampler = decoder, marginal, sampler
    self._adapt = adapt
    self._num_all = sampler.num_chains + (sampler.num_pilot_chains if adapt else 0)
    self._advance = tf.function(self._advance_fn, autograph=False, reduce_retracing=True)
    self._start = tf.function(self._start_fn, autograph=False, reduce_retracing=True)

  def start_from_marginal(self, x, seed):
    """Chains at z ~ m(z), each image's drawn independently."""
    z = self._marginal.sample(self._num_all * x.shape[0], seed=seed)
    return self._start(x, tf.reshape(z, [self._num_all, x.shape[0], -1]))

  def start_from(self, x, latents):
    """Chains of each image all at its latent, `latents` `[N, latent]`."""
    return self._start(x, tf.tile(latents[tf.newaxis], [self._num_all, 1, 1]))

  def run(self, x, chains, schedule, stored, seed, step_sizes=None):
    """Runs `chains` (at `schedule[0]`) along `schedule`, transition t on
    `fold_in(seed, t)`, stopping at each index of `stored` (increasing).

    Returns numpy arrays: the weighted chains' log-weights and log d(x|z) at each stop
    `[S, C, N]`, and each transition's step sizes and the weighted chains' mean
    acceptance probability `[T, N]` (T the last stop).
    """
    if step_sizes is None:
      step_sizes = np.zeros([int(stored[-1]), x.shape[0]])
    x_tiled = _tile(x, self._num_all)
    schedule = tf.constant(schedule, tf.float64)
    step_sizes = tf.constant(step_sizes, chains.point.z.dtype)
    stops, used, accepted, start = [], [], [], 0
    for end in stored:
      chains, used_part, accepted_part = self._advance(
          chains, x_tiled, schedule, step_sizes, seed, tf.constant(start, tf.int32),
          tf.constant(int(end), tf.int32))
      weighted = slice(0, self._sampler.num_chains)
      stops.append((chains.log_w[weighted].numpy(), chains.point.log_d[weighted].numpy()))
      used.append(used_part.numpy())
      accepted.append(accepted_part.numpy())
      start = int(end)
    log_w, log_d = (np.stack(s) for s in zip(*stops))
    return log_w, log_d, np.concatenate(used), np.concatenate(accepted)

  def _start_fn(self, x, z):
    point = _evaluate(self._decoder, self._marginal, _tile(x, self._num_all), z)
    return _Chains(point, tf.zeros(tf.shape(point.log_d), tf.float64),
                   tf.fill(tf.shape(x)[:1], tf.cast(self._sampler.initial_step_size, z.dtype)))

  def _advance_fn(self, chains, x, schedule, step_sizes, seed, start, end):
    """Transitions `start` .. `end - 1`: transition t adds (beta_{t+1} - beta_t) log d(x|z)
    to the log-weights, then takes one HMC step that leaves f_{beta_{t+1}} invariant."""
    sampler, dtype = self._sampler, chains.point.z.dtype

    def evaluate(z):
      return _evaluate(self._decoder, self._marginal, x, z)

    def body(t, chains, used, accepted):
      log_w = chains.log_w + (schedule[t + 1] - schedule[t]) * tf.cast(chains.point.log_d,
                                                                       tf.float64)
      step_size = chains.step_size if self._adapt else step_sizes[t]
      point, acceptance = _hmc_step(evaluate, chains.point, tf.cast(schedule[t + 1], dtype),
                                    step_size, _fold(seed, t), sampler.num_leapfrog_steps)
      used = used.write(t - start, step_size)
      accepted = accepted.write(
          t - start, tf.reduce_mean(acceptance[:sampler.num_chains], axis=0))
      chains = _Chains(point, log_w, self._next_step_size(step_size, acceptance))
      return t + 1, chains, used, accepted

    records = [tf.TensorArray(dtype, size=end - start) for _ in range(2)]
    _, chains, used, accepted = tf.while_loop(lambda t, *_: t < end, body,
                                              (start, chains, *records))
    return chains, used.stack(), accepted.stack()

  def _next_step_size(self, step_size, acceptance):
    """Each image's next step size, from its pilot chains' acceptance probabilities
    (`acceptance` `[C + P, N]`); the same when the step sizes are given."""
    if not self._adapt:
      return step_size
    pilots = tf.reduce_mean(acceptance[self._sampler.num_chains:], axis=0)
    up, down = (tf.constant(f, step_size.dtype) for f in ADAPTATION_FACTORS)
    factor = tf.where(pilots > self._sampler.target_acceptance, up, down)
    return tf.clip_by_value(step_size * factor, *STEP_SIZE_RANGE)


def _hmc_step(evaluate, point, beta, step_size, seed, num_leapfrog_steps):
  """One HMC transition per chain for the target f(z) = m(z) d(x|z)^beta (Neal 2011):
  momentum p ~ N(0, I), `num_leapfrog_steps` leapfrog steps of size `step_size` `[N]`,
  then a Metropolis test of the change in H = -log f(z) + |p|^2 / 2 (a proposal with a
  NaN energy is rejected). The states carry log m, log d and both gradients, so that each
  leapfrog step evaluates the model once and a new beta needs no extra evaluation.

  Returns the next point and each chain's acceptance probability min(1, exp(-dH)).
  """
  momentum = tf.random.stateless_normal(tf.shape(point.z), _fold(seed, 0), dtype=point.z.dtype)
  size = step_size[..., tf.newaxis]

  def gradient(pt):
    return pt.grad_m + beta * pt.grad_d

  def leapfrog(i, pt, p):
    new = evaluate(pt.z + size * p)
    kick = tf.where(tf.equal(i, num_leapfrog_steps - 1), .5, 1.)
    return i + 1, new, p + tf.cast(kick, size.dtype) * size * gradient(new)

  # A static trip count, so that a count of a transition's FLOPs from its graph can multiply
  # the loop's body by it (the benchmark's).
  _, proposal, p = tf.while_loop(lambda i, *_: i < num_leapfrog_steps, leapfrog,
                                 (0, point, momentum + .5 * size * gradient(point)),
                                 maximum_iterations=num_leapfrog_steps)

  def energy(pt, p):
    return -(pt.log_m + beta * pt.log_d) + .5 * tf.reduce_sum(tf.square(p), axis=-1)

  log_accept = energy(point, momentum) - energy(proposal, p)
  log_accept = tf.where(tf.math.is_nan(log_accept), tf.constant(-np.inf, log_accept.dtype),
                        log_accept)
  uniform = tf.random.stateless_uniform(tf.shape(log_accept), _fold(seed, 1),
                                        dtype=log_accept.dtype)
  accept = tf.math.log(uniform) < log_accept
  chosen = tf.nest.map_structure(lambda new, old: _select(accept, new, old), proposal, point)
  return chosen, tf.exp(tf.minimum(log_accept, 0.))


def _evaluate(decoder, marginal, x, z):
  """The `_Point` at z `[C, N, latent]`: log m(z), log d(x|z) `[C, N]` (x tiled to
  `[C * N, ...]`, chain-major) and their gradients with respect to z."""
  with tf.GradientTape(persistent=True) as tape:
    tape.watch(z)
    flat = tf.reshape(z, [-1, z.shape[-1]])
    log_m = tf.cast(tf.reshape(marginal.log_prob(flat), tf.shape(z)[:-1]), z.dtype)
    log_d = tf.cast(tf.reshape(decoder(flat).log_prob(x), tf.shape(z)[:-1]), z.dtype)
  zero = tf.UnconnectedGradients.ZERO
  grad_m = tape.gradient(log_m, z, unconnected_gradients=zero)
  grad_d = tape.gradient(log_d, z, unconnected_gradients=zero)
  del tape
  return _Point(z, log_m, log_d, grad_m, grad_d)


def _select(condition, new, old):
  """`new` where `condition` `[C, N]` holds, else `old`, for `[C, N, ...]` tensors."""
  extra = len(new.shape) - len(condition.shape)
  return tf.where(tf.reshape(condition, tf.concat([tf.shape(condition), [1] * extra], 0)),
                  new, old)


def _tile(x, num_chains):
  """x `[N, ...]` -> `[C * N, ...]`, chain-major, as z `[C, N, latent]` flattens."""
  return tf.tile(x, [num_chains] + [1] * (len(x.shape) - 1))


def _sampler(num_chains, num_pilot_chains, num_leapfrog_steps, target_acceptance,
             initial_step_size):
  """The checked HMC settings."""
  if num_chains < 2:
    raise ValueError(f'num_chains must be >= 2 for standard errors, got {num_chains}')
  if num_pilot_chains < 1:
    raise ValueError(f'num_pilot_chains must be >= 1, got {num_pilot_chains}')
  if num_leapfrog_steps < 1:
    raise ValueError(f'num_leapfrog_steps must be >= 1, got {num_leapfrog_steps}')
  if not 0. < target_acceptance < 1.:
    raise ValueError(f'target_acceptance must be in (0, 1), got {target_acceptance}')
  return _Sampler(int(num_chains), int(num_pilot_chains), int(num_leapfrog_steps),
                  float(target_acceptance), float(initial_step_size))


def _slice_columns(array, batch, batch_size):
  """Columns (images) of batch `batch` of `array` `[T, N]`."""
  return np.asarray(array)[:, batch * batch_size:(batch + 1) * batch_size]


def _fold(seed, data):
  """`stateless_fold_in(seed, data)`, an int32 seed as TFP's samplers take."""
  return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, tf.int32))


def _stderr(values):
  """The standard error of the mean of `values` (0 for one value)."""
  values = np.asarray(values, np.float64)
  return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else 0.
