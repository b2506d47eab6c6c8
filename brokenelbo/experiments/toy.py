"""The discrete toy experiment of Section 4.1 and Appendix E (Figure 2).

Data: `z* ~ Bernoulli(0.7)`, `h | z* ~ Normal(loc[z*], scale[z*])`, `x` = `h` in `J = 30`
equal bins on `[low, high]` (the outer bins take the tails: `p*(x)` sums to one exactly).
Every quantity is an exact sum over the `J x K` table `p*(x) e(z|x)`: "effectively infinite
data". `x_j` is the centre of bin `j`, `u_i` that of cell `i` of `K = 30` on `[low, high]`:

    e(z_i | x_j) ∝ exp(-(w^e_i x_j - b^e_i)**2)     2K parameters, a pair per latent state
    d(x_j | z_i) ∝ exp(-(w^d_j u_i - b^d_j)**2)     2J parameters, a pair per data bin
    m(z_i) = softmax(pi)_i                           K parameters

Indexed by data bin, the decoder gives any `d(x)` independent of `z` at `w^d = 0` (Fig. 2b);
indexed by latent state, every `d(x|z)` is one bump, which cannot fit the bimodal `p*` at
zero rate (the ELBO then keeps `R ~ 0.55`). The exact quantities (Sections 2 and 4.1):

    H = -sum_x p*(x) log p*(x)       R = sum_x p*(x) KL(e(z|x) || m(z))      ELBO = -(D + R)
    D = -sum_x p*(x) sum_z e(z|x) log d(x|z)     I_e = sum_x p*(x) KL(e(z|x) || e(z))
    e(z) = sum_x p*(x) e(z|x),   g(x) = sum_z m(z) d(x|z),   H - D <= I_e <= R

The ELBO is maximized by `R = 0`, `d(x|z) = p*(x)` (Fig. 2b). `D + |sigma - R| >= H - sigma`
is minimized by every model with `I_e = R = sigma` and an exact decoder (Fig. 2a), and by
every ELBO-tight one with `R >= sigma`: hence the spread over seeds in `toy.json`.

[1]: Alemi, Poole, Fischer, Dillon, Saurous, Murphy. Fixing a Broken ELBO. In _ICML_, 2018.
[2]: Kingma, Ba. Adam: A Method for Stochastic Optimization. In _ICLR_, 2015.
"""

import os
import time
from typing import NamedTuple

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.utils import files
from brokenelbo.visualize import figure2

tfd = tfp.distributions

# Exact sums in double precision: the quantities are compared with the theory to ~1e-12.
DTYPE = tf.float64
TRAIN_DTYPE = tf.float32
RESULTS_FILE = 'toy.json'
FIGURE_FILE = 'figure2.png'
OPERATIVE_CONFIG_FILE = 'operative_config.gin'
SCALAR_KEYS = ('rate', 'distortion', 'elbo', 'kl_data_to_model', 'class_separation',
               'mutual_information')


class ToyData(NamedTuple):
  """The exact data distribution of Appendix E.

  Attributes:
    x: `float64` array `[J]`, bin centres (the real-valued `x_j` the model sees).
    latent_probs: `float64` array `[2]`, `p(z*)`.
    likelihood: `float64` array `[2, J]`, `p(x | z*)`.
    probs: `float64` array `[J]`, `p*(x) = sum_z* p(z*) p(x | z*)`.
    low: Python `float`, left end of the binned range.
    high: Python `float`, right end of the binned range.
  """
  x: np.ndarray
  latent_probs: np.ndarray
  likelihood: np.ndarray
  probs: np.ndarray
  low: float
  high: float


@gin.configurable
@domains.checked(num_bins=domains.POSITIVE_INT, prob_z1=domains.PROBABILITY,
                 loc=domains.tuple_of(domains.real(), length=2),
                 scale=domains.tuple_of(domains.POSITIVE, length=2), low=domains.real(),
                 high=domains.real())
def toy_data(num_bins=gin.REQUIRED, prob_z1=gin.REQUIRED, loc=gin.REQUIRED,
             scale=gin.REQUIRED, low=gin.REQUIRED, high=gin.REQUIRED):
  """The discretized two-component mixture of Appendix E, computed exactly.

  ```none
  z* ~ Bernoulli(prob_z1),  h | z* ~ Normal(loc[z*], scale[z*]),
  x = j  iff  edge_j <= h < edge_{j+1},  edges = linspace(low, high, num_bins + 1)
  ```
  with the outer edges moved to `-inf` and `+inf`.

  Args:
    num_bins: Python `int`, the number of bins `J`.
    prob_z1: Python `float`, `p(z* = 1)`.
    loc: pair of Python `float`s, the means of `h` given `z* = 0` and `z* = 1`.
    scale: pair of Python `float`s, the standard deviations of `h` given `z*`.
    low: Python `float`, left end of the binned range.
    high: Python `float`, right end of the binned range.

  Returns:
    A `ToyData`.
  """
  edges = np.linspace(low, high, num_bins + 1)
  centres = (edges[:-1] + edges[1:]) / 2.
  edges[0], edges[-1] = -np.inf, np.inf
  normal = tfd.Normal(loc=np.asarray(loc, np.float64)[:, np.newaxis],
                      scale=np.asarray(scale, np.float64)[:, np.newaxis])
  likelihood = np.diff(normal.cdf(edges).numpy(), axis=-1)
  latent_probs = np.array([1. - prob_z1, prob_z1])
  return ToyData(x=centres, latent_probs=latent_probs, likelihood=likelihood,
                 probs=latent_probs @ likelihood, low=float(low), high=float(high))


def true_mutual_information(data):
  """`I(x; z*) = sum_{x,z*} p(z*) p(x|z*) log(p(x|z*) / p*(x))`, exactly, in nats."""
  conditionals = tfd.Categorical(probs=data.likelihood)
  return float(np.sum(data.latent_probs * tfd.kl_divergence(
      conditionals, tfd.Categorical(probs=data.probs)).numpy()))


def latent_positions(num_latents, low, high):
  """`u_i`: the centres of `num_latents` equal cells on `[low, high]`."""
  edges = np.linspace(low, high, num_latents + 1)
  return (edges[:-1] + edges[1:]) / 2.


class ToyModel(NamedTuple):
  """Encoder, decoder and marginal as TFP categoricals, with any leading batch shape `B`.

  Attributes:
    encoder: `tfd.Categorical` over the `K` latent states, batch shape `B + [J]`: `e(z|x_j)`.
    decoder: `tfd.Categorical` over the `J` bins, batch shape `B + [K]`: `d(x|z_i)`.
    marginal: `tfd.Categorical` over the `K` latent states, batch shape `B`: `m(z)`.
  """
  encoder: tfd.Categorical
  decoder: tfd.Categorical
  marginal: tfd.Categorical


def squared_bump_categorical(weight, bias, inputs):
  """`p(k | input_n) ∝ exp(-(w_k input_n - b_k)**2)`: the form of both conditionals.

  Args:
    weight: `Tensor` `B + [num_outputs]`, `w_k`.
    bias: `Tensor` `B + [num_outputs]`, `b_k`.
    inputs: `Tensor` `[num_inputs]`, the real-valued positions of the input states.

  Returns:
    `tfd.Categorical` over `num_outputs` with batch shape `B + [num_inputs]`.
  """
  logits = -tf.square(weight[..., tf.newaxis, :] * inputs[:, tf.newaxis]
                      - bias[..., tf.newaxis, :])
  return tfd.Categorical(logits=logits)


class ToyParams(NamedTuple):
  """Unconstrained parameters, each with the leading batch shape `B`."""
  encoder_weight: tf.Tensor  # B + [K]
  encoder_bias: tf.Tensor  # B + [K]
  decoder_weight: tf.Tensor  # B + [J]
  decoder_bias: tf.Tensor  # B + [J]
  marginal_logits: tf.Tensor  # B + [K]


def make_model(params, x, u):
  """The parametric model of Appendix E at `params` (see the module docstring)."""
  return ToyModel(
      encoder=squared_bump_categorical(params.encoder_weight, params.encoder_bias, x),
      decoder=squared_bump_categorical(params.decoder_weight, params.decoder_bias, u),
      marginal=tfd.Categorical(logits=params.marginal_logits))


def optimal_states(data, num_latents):
  """The two latent states the optimal model uses, `[state of z* = 0, state of z* = 1]`.

  Any two states are equally optimal; these are the ones whose position `u_i` is nearest
  the mean of `x` given `z*`, so that Figure 2 puts each cluster where its data lies.
  """
  u = latent_positions(num_latents, data.low, data.high)
  states = [int(np.argmin(np.abs(u - mean))) for mean in data.likelihood @ data.x]
  return states if states[0] != states[1] else [0, num_latents - 1]


def optimal_model(data, num_latents):
  """The hand-engineered optimal model (Fig. 2a), built from the true generative process.

  ```none
  e(z|x) = p(z*|x),  d(x|z) = p(x|z*),  m(z) = p(z*)
  ```
  on two of the `K` states (the other states get `e = m = 0` and a uniform `d`). Then
  `R = I_e = I(x; z*)`, `D = H - I(x; z*)` and `g = p*`: every bound is tight.

  Args:
    data: a `ToyData`.
    num_latents: Python `int`, `K`.

  Returns:
    A `ToyModel` with empty batch shape, built from probabilities (with exact zeros).
  """
  states = optimal_states(data, num_latents)
  num_bins = data.probs.shape[0]
  posterior = data.latent_probs[:, np.newaxis] * data.likelihood / data.probs  # [2, J]
  encoder = np.zeros([num_bins, num_latents])
  encoder[:, states] = posterior.T
  decoder = np.full([num_latents, num_bins], 1. / num_bins)
  decoder[states] = data.likelihood
  marginal = np.zeros([num_latents])
  marginal[states] = data.latent_probs
  return ToyModel(encoder=tfd.Categorical(probs=encoder),
                  decoder=tfd.Categorical(probs=decoder),
                  marginal=tfd.Categorical(probs=marginal))


def _log_probs(dist):
  return tf.math.log_softmax(dist.logits_parameter())


def _mul_exp(values, log_probs):
  """`values * exp(log_probs)`, zero wherever the probability is (even for `values = nan`)."""
  probs = tf.exp(log_probs)
  return tf.where(tf.equal(probs, 0.), tf.zeros_like(values), values) * probs


def rate_and_distortion(model, data_probs):
  """The exact rate `R` and distortion `D` of `model` under `p*`, batch shape `B`."""
  marginal = tfd.Categorical(logits=model.marginal.logits_parameter()[..., tf.newaxis, :])
  rate = tf.reduce_sum(data_probs * tfd.kl_divergence(model.encoder, marginal), axis=-1)
  log_decoder = tf.linalg.matrix_transpose(_log_probs(model.decoder))  # B + [J, K]
  distortion = -tf.reduce_sum(
      data_probs * tf.reduce_sum(_mul_exp(log_decoder, _log_probs(model.encoder)), -1), -1)
  return rate, distortion


def toy_quantities(model, data):
  """Every exact quantity of Section 4.1 and Figure 2 for `model` (any batch shape `B`).

  Args:
    model: a `ToyModel`.
    data: a `ToyData`.

  Returns:
    `dict` of `float64` `Tensor`s. `entropy` (`H`, a scalar); scalars per model (shape
    `B`): `rate`, `distortion`, `elbo`, `mutual_information` (`I_e`), `kl_data_to_model`
    (`KL(p*||g)`), `class_separation` (total variation between `e(z | z* = 0)` and
    `e(z | z* = 1)`, where `e(z | z*) = sum_x p(x | z*) e(z|x)`).
    Tables: `encoder` (`e(z|x)`, `B + [J, K]`), `decoder` (`d(x|z)`, `B + [K, J]`),
    `reconstruction` (`p(x'|x) = sum_z e(z|x) d(x'|z)`, `B + [J, J]`), `marginal`
    (`m(z)`), `aggregate_posterior` (`e(z)`), `class_posteriors` (`e(z | z*)`,
    `B + [2, K]`), `model_probs` (`g(x)`) and `decoded_probs`
    (`d(x) = sum_z e(z) d(x|z)`).
  """
  data_probs = tf.constant(data.probs, DTYPE)
  rate, distortion = rate_and_distortion(model, data_probs)
  log_encoder = _log_probs(model.encoder)  # B + [J, K]
  log_decoder = _log_probs(model.decoder)  # B + [K, J]
  log_marginal = _log_probs(model.marginal)  # B + [K]
  log_data = tf.math.log(data_probs)
  data_dist = tfd.Categorical(probs=data_probs)
  # e(z) = sum_x p*(x) e(z|x), and I_e = E_x KL(e(z|x) || e(z)).
  log_aggregate = tf.reduce_logsumexp(log_data[:, tf.newaxis] + log_encoder, axis=-2)
  aggregate = tfd.Categorical(logits=log_aggregate[..., tf.newaxis, :])
  mutual_information = tf.reduce_sum(
      data_probs * tfd.kl_divergence(model.encoder, aggregate), axis=-1)
  # g(x) = sum_z m(z) d(x|z).
  log_model = tf.reduce_logsumexp(log_marginal[..., tf.newaxis] + log_decoder, axis=-2)
  kl_data_to_model = tfd.kl_divergence(data_dist, tfd.Categorical(logits=log_model))
  encoder = tf.exp(log_encoder)
  decoder = tf.exp(log_decoder)
  class_posteriors = tf.einsum('cj,...jk->...ck', tf.constant(data.likelihood, DTYPE),
                               encoder)
  class_separation = .5 * tf.reduce_sum(
      tf.abs(class_posteriors[..., 0, :] - class_posteriors[..., 1, :]), axis=-1)
  return dict(
      rate=rate, distortion=distortion, elbo=-(distortion + rate),
      entropy=data_dist.entropy(), mutual_information=mutual_information,
      kl_data_to_model=kl_data_to_model, class_separation=class_separation,
      encoder=encoder, decoder=decoder,
      reconstruction=tf.einsum('...jk,...kl->...jl', encoder, decoder),
      marginal=tf.exp(log_marginal), aggregate_posterior=tf.exp(log_aggregate),
      class_posteriors=class_posteriors, model_probs=tf.exp(log_model),
      decoded_probs=tf.einsum('...k,...kj->...j', tf.exp(log_aggregate), decoder))


def elbo_loss(rate, distortion, beta):
  """`D + beta R`: minus the ELBO at `beta = 1` (Eq. 6 of [1])."""
  return distortion + beta * rate


def target_rate_loss(rate, distortion, target_rate):
  """`D + |sigma - R|`, the target-rate objective of Section 4.1 of [1]."""
  return distortion + tf.abs(target_rate - rate)


def initial_params(seeds, num_latents, num_bins, init_scale):
  """`ToyParams` with batch `[len(seeds)]`, i.i.d. `Normal(0, init_scale)` per seed.

  Each initialization depends only on its own seed (a stateless draw), so seed `s` is the
  same whatever the number of seeds and whichever objective it is trained with.
  """
  sizes = [num_latents, num_latents, num_bins, num_bins, num_latents]
  draws = [tf.random.stateless_normal([sum(sizes)], seed=[seed, 0], stddev=init_scale,
                                      dtype=DTYPE) for seed in seeds]
  return ToyParams(*tf.split(tf.stack(draws), sizes, axis=-1))


def _adam_step(loss_fn, num_steps, learning_rate, final_learning_rate, decay_start_fraction,
               dtype):
  """`step(t, params, first, second)`: step `t + 1` of Adam [2] on `loss_fn(params)`.

  Adam's paper's defaults (`beta_1 = 0.9`, `beta_2 = 0.999`, `epsilon = 1e-8`), with the
  step size held at `learning_rate` for `decay_start_fraction * num_steps` steps, then
  decaying exponentially to `final_learning_rate` at the last step.
  """
  decay_start = decay_start_fraction * num_steps
  log_decay = np.log(final_learning_rate / learning_rate) / (num_steps - decay_start)
  beta_1, beta_2, epsilon = 0.9, 0.999, 1e-8

  def step(t, params, first, second):
    with tf.GradientTape() as tape:
      tape.watch(params)
      loss = loss_fn(params)
    grads = tape.gradient(loss, params)
    t = t + 1
    float_t = tf.cast(t, dtype)
    decayed = tf.exp(log_decay * tf.maximum(float_t - decay_start, 0.))
    size = (learning_rate * decayed * tf.sqrt(1. - beta_2 ** float_t)
            / (1. - beta_1 ** float_t))
    first = tf.nest.map_structure(lambda m, g: beta_1 * m + (1. - beta_1) * g, first, grads)
    second = tf.nest.map_structure(lambda v, g: beta_2 * v + (1. - beta_2) * g * g,
                                   second, grads)
    params = tf.nest.map_structure(lambda p, m, v: p - size * m / (tf.sqrt(v) + epsilon),
                                   params, first, second)
    return t, params, first, second

  return step


def fit(losses, params, data, num_latents, num_steps, learning_rate, final_learning_rate,
        decay_start_fraction):
  """Minimizes each exact objective from every initialization at once, full batch.

  Adam [2] with the schedule of `_adam_step`. All `len(losses) x num_seeds` models are one
  batch inside one XLA-compiled loop, run in `TRAIN_DTYPE` (float32: six times faster than
  float64 on CPU); the caller evaluates the returned parameters exactly, in float64.

  Args:
    losses: Python `list` of callables `(rate, distortion) -> loss`, one per objective.
    params: `ToyParams` with batch `[num_seeds]`: the shared initializations.
    data: a `ToyData`.
    num_latents: Python `int`, `K`.
    num_steps: Python `int`, Adam steps.
    learning_rate: Python `float`, the first step size.
    final_learning_rate: Python `float`, the last step size.
    decay_start_fraction: Python `float` in `[0, 1)`, the constant part of the schedule.

  Returns:
    `ToyParams` (float64) with batch `[len(losses), num_seeds]`.
  """
  dtype = TRAIN_DTYPE
  x = tf.constant(data.x, dtype)
  u = tf.constant(latent_positions(num_latents, data.low, data.high), dtype)
  data_probs = tf.constant(data.probs, dtype)
  params = tf.nest.map_structure(lambda p: tf.cast(tf.stack([p] * len(losses)), dtype),
                                 params)

  def total_loss(params):
    rate, distortion = rate_and_distortion(make_model(params, x, u), data_probs)
    return sum(tf.reduce_sum(loss(rate[i], distortion[i])) for i, loss in enumerate(losses))

  step = _adam_step(total_loss, num_steps, learning_rate, final_learning_rate,
                    decay_start_fraction, dtype)

  @tf.function(jit_compile=True, autograph=False)  # Traced as written.
  def run(params):
    zeros = tf.nest.map_structure(tf.zeros_like, params)
    _, params, _, _ = tf.while_loop(lambda t, *_: t < num_steps, step,
                                    (tf.constant(0), params, zeros, zeros))
    return params

  return tf.nest.map_structure(lambda p: tf.cast(p, DTYPE), run(params))


def _summary(quantities, seeds, figure_seed):
  """Median, min and max over seeds, and every seed, of the scalar quantities."""
  values = {key: np.asarray(quantities[key]) for key in SCALAR_KEYS}
  summary = {key: float(np.median(value)) for key, value in values.items()}
  summary['min'] = {key: float(np.min(value)) for key, value in values.items()}
  summary['max'] = {key: float(np.max(value)) for key, value in values.items()}
  summary['figure_seed'] = int(figure_seed)
  summary['seeds'] = [dict(seed=int(seed), **{key: float(value[i])
                                              for key, value in values.items()})
                      for i, seed in enumerate(seeds)]
  return summary


def median_index(values):
  """The index of the lower median of `values`: the initialization shown in Figure 2."""
  return int(np.argsort(values, kind='stable')[(len(values) - 1) // 2])


def _as_numpy(quantities):
  return {key: value.numpy() for key, value in quantities.items()}


def _trained_quantities(losses, data, seeds, num_latents, init_scale, *fit_args):
  """`toy_quantities` (as numpy) of the models that `fit(losses, ..., *fit_args)` trains
  from the initializations of `seeds`: batch `[len(losses), len(seeds)]`."""
  params = fit(losses, initial_params(seeds, num_latents, data.probs.shape[0], init_scale),
               data, num_latents, *fit_args)
  u = tf.constant(latent_positions(num_latents, data.low, data.high), DTYPE)
  return _as_numpy(toy_quantities(make_model(params, tf.constant(data.x, DTYPE), u), data))


def _results_and_columns(data, optimal, trained, seeds, titles):
  """The results of `toy.json` and the columns of Figure 2, from the quantities of the
  optimal model and of the trained ones (one per entry of `titles`, in order)."""
  results = dict(true_mutual_information=true_mutual_information(data),
                 entropy=float(optimal['entropy']),
                 models=dict(optimal={key: float(optimal[key]) for key in SCALAR_KEYS}))
  columns = [('(a) optimal', optimal)]
  count = f'median-separation seed of {len(seeds)}'
  for i, name in enumerate(titles):
    shown = median_index(trained['class_separation'][i])
    results['models'][name] = _summary({key: trained[key][i] for key in SCALAR_KEYS},
                                       seeds, seeds[shown])
    columns.append((f'{titles[name]}\n{count}: seed {seeds[shown]}',
                    {key: value[i, shown] for key, value in trained.items()
                     if np.ndim(value) >= 2}))
  return results, columns


@gin.configurable(denylist=['output_dir', 'overwrite'])
@domains.checked(num_latents=domains.POSITIVE_INT, num_seeds=domains.POSITIVE_INT,
                 beta=domains.NON_NEGATIVE, target_rate=domains.NON_NEGATIVE,
                 num_steps=domains.POSITIVE_INT, learning_rate=domains.POSITIVE,
                 final_learning_rate=domains.POSITIVE,
                 decay_start_fraction=domains.PROBABILITY, init_scale=domains.POSITIVE)
def toy_experiment(output_dir, overwrite=False, num_latents=gin.REQUIRED,
                   num_seeds=gin.REQUIRED, beta=gin.REQUIRED, target_rate=gin.REQUIRED,
                   num_steps=gin.REQUIRED, learning_rate=gin.REQUIRED,
                   final_learning_rate=gin.REQUIRED, decay_start_fraction=gin.REQUIRED,
                   init_scale=gin.REQUIRED):
  """Runs the toy experiment of Section 4.1: three models, exact quantities, Figure 2.

  Writes `output_dir/toy.json`, `output_dir/figure2.png` and
  `output_dir/operative_config.gin`. The ELBO and target-rate models are trained from the
  same `num_seeds` initializations; `toy.json` holds the median over them at the top level
  of each model, their min and max, and every initialization under `seeds`. Figure 2 shows,
  for each trained objective, the initialization with the (lower) median class separation.

  Args:
    output_dir: Python `str`, where to write the results.
    overwrite: Python `bool`, whether to replace an existing `toy.json`.
    num_latents: Python `int`, `K`, the number of latent states.
    num_seeds: Python `int`, initializations per trained model.
    beta: Python `float`, the weight of `R` in the ELBO model's objective `D + beta R`.
    target_rate: Python `float`, `sigma` in the target-rate objective `D + |sigma - R|`.
    num_steps: Python `int`, Adam steps.
    learning_rate: Python `float`, the first Adam step size.
    final_learning_rate: Python `float`, the last Adam step size.
    decay_start_fraction: Python `float`, the fraction of `num_steps` run at
      `learning_rate` before the exponential decay to `final_learning_rate`.
    init_scale: Python `float`, the standard deviation of the initial parameters.

  Returns:
    The results `dict` written to `toy.json`.

  Raises:
    errors.UserError: if `toy.json` exists and `overwrite` is false, or `output_dir` cannot
      be written to.
  """
  results_path = os.path.join(output_dir, RESULTS_FILE)
  if os.path.exists(results_path) and not overwrite:
    raise errors.UserError(f'{results_path} exists; pass --overwrite to replace it')
  files.check_writable_dir(output_dir, 'output_dir')  # Before minutes of computing.
  start = time.time()
  data = toy_data()
  optimal = _as_numpy(toy_quantities(optimal_model(data, num_latents), data))
  seeds = list(range(num_seeds))
  titles = dict(elbo=f'(b) ELBO (beta = {beta:g})',
                target_rate=f'(c) target rate (sigma = {target_rate:g})')
  losses = (lambda rate, distortion: elbo_loss(rate, distortion, beta),
            lambda rate, distortion: target_rate_loss(rate, distortion, target_rate))
  trained = _trained_quantities(losses, data, seeds, num_latents, init_scale, num_steps,
                                learning_rate, final_learning_rate, decay_start_fraction)
  logging.info('trained %d models in %.1f s', len(losses) * num_seeds, time.time() - start)
  results, columns = _results_and_columns(data, optimal, trained, seeds, titles)
  figure2.plot_figure2(os.path.join(output_dir, FIGURE_FILE), data, columns)
  files.write_atomic(os.path.join(output_dir, OPERATIVE_CONFIG_FILE),
                     gin.operative_config_str())
  files.write_atomic(results_path, files.to_json(results, indent=2))
  logging.info('wrote %s in %.1f s', results_path, time.time() - start)
  return results
