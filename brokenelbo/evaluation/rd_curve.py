"""The rate-distortion curve of a run's decoder and marginal, by annealed importance sampling.

For a restored VAE, `rd_curve_suite` estimates, on examples evenly spaced through a split
(`data.subsets.spread`), the best rate and distortion that any encoder could reach with the
run's decoder d(x|z) and marginal m(z) at each stored beta (`statistics.ais`: one AIS run
per example from m(z), Huang et al. 2020), and the run's own encoder's R and D on the same
examples: an encoder trained on D + beta' R is to be compared with the curve's point at
beta = 1 / beta'. At beta = 1 the curve's R + D is -log p(x), so `ais_nll` is AIS's estimate
of the model's NLL; beside it, the encoder's importance-weighted NLL_K on the same examples
(`importance_samples`), and `rate_gap_bounds` brackets how far an encoder lies above the
curve. Optionally, `bdmc_examples` pairs (z, x) drawn from the model bracket log p(x) by
bidirectional Monte Carlo, whose gap says how far the AIS estimates are off. AIS anneals
in the coordinates where m's density is cheap (`annealing_space`).

`record_rd_curve` computes it on a restored run's split and records it with the run, apart
from `evaluate`'s record: `rd_curve.json` (`training.run_record`, `{split: record}`, an
existing record of a split replaced only with `overwrite`) and the TensorBoard scalars
`rd_curve/<split>/<name>` at the run's step. The command line:

  python -m brokenelbo.rd_curve --model_dir=RUN \
      --gin_bindings='rd_curve_suite.num_examples = 8'

Its cost is the decoder's gradient, chains x examples x distributions x leapfrog steps
times: on 2 shared CPU cores, 8 examples x 6 chains (4, and 2 pilots) x 100 x 20 took
70 s with the `-` decoder and 6 to 7 minutes with the `+` (PixelCNN) of the `-+v` runs, and
the defaults are 15 times that. Bind fewer there, more on a GPU (Huang et al. use 40
chains and 5000 to 1.6 million distributions).
"""

import math

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.data import subsets
from brokenelbo.evaluation import evaluate_run
from brokenelbo.statistics import ais
from brokenelbo.statistics import elbo
from brokenelbo.statistics import information
from brokenelbo.training import run_dir
from brokenelbo.training import run_record


def _key(name, beta):
  """`ais_<name>_b<beta>`, e.g. `ais_rate_b0.5`."""
  return f'ais_{name}_b{beta:g}'


def _stream(seed, index):
  """A base seed `[seed, index]`: 0 for the curve, 1 for the BDMC pairs' draws, 2 for
  their chains."""
  return tf.constant([seed, index], tf.int32)


def annealing_space(model, marginal=None):
  """The decoder and marginal over which AIS anneals `model`'s curve: `(decoder, marginal)`.

  The curve is the same in any coordinates u with z = f(u), f a bijection: the tempered
  posterior over u is m_u(u) d(x|f(u))^beta, with m_u the density of f^-1(z) for z ~ m,
  so Z_beta and the law of -log d(x|z), hence R_beta and D_beta, do not change. Where m
  is a distribution pushed through the encoder's inverse autoregressive flow (a VampPrior
  under a `+` encoder, `models.marginals.VampPrior`), m's density needs the flow's inverse,
  a MADE pass per latent dimension and flow step, at every leapfrog step; its forward is
  one pass per step. There AIS anneals over the flow's base distribution, with the decoder
  composed with the flow's forward. Elsewhere it anneals over z, as given. `marginal`:
  `model.marginal_distribution()` if built already (a VampPrior's costs an encoder pass).
  """
  decoder = model.decoder
  marginal = model.marginal_distribution() if marginal is None else marginal
  flow = getattr(model.encoder, 'flow', None)
  # (TFP builds a `TransformedDistribution` of one of two classes: asked for its bijector.)
  if flow is not None and flow.inverse and getattr(marginal, 'bijector', None) is flow.bijector:
    bijector = marginal.bijector
    return (lambda u: decoder(bijector.forward(u))), marginal.distribution
  return decoder, marginal


# The importance-weighted bounds set beside AIS's NLL: the one-sample ELBO, the information
# suite's largest K, and Burda et al.'s (2016, Section 5.2) K = 5000 estimate of log p(x).
DEFAULT_IMPORTANCE_SAMPLES = (1, 100, 5000)


@gin.configurable(denylist=['model', 'images', 'seed'])
@domains.checked(betas=domains.tuple_of(domains.POSITIVE), num_examples=domains.POSITIVE_INT,
                 num_steps=domains.POSITIVE_INT, num_chains=domains.integer(2),
                 num_pilot_chains=domains.POSITIVE_INT,
                 num_leapfrog_steps=domains.POSITIVE_INT, target_acceptance=domains.FRACTION,
                 initial_step_size=domains.real(*ais.STEP_SIZE_RANGE),
                 radius=domains.POSITIVE, bdmc_examples=domains.NON_NEGATIVE_INT,
                 batch_size=domains.POSITIVE_INT,
                 importance_samples=domains.tuple_of(domains.POSITIVE_INT))
def rd_curve_suite(model, images, seed, betas=ais.DEFAULT_BETAS, num_examples=8,
                   num_steps=ais.DEFAULT_NUM_STEPS, num_chains=ais.DEFAULT_NUM_CHAINS,
                   num_pilot_chains=ais.DEFAULT_NUM_PILOT_CHAINS,
                   num_leapfrog_steps=ais.DEFAULT_NUM_LEAPFROG_STEPS,
                   target_acceptance=ais.DEFAULT_TARGET_ACCEPTANCE,
                   initial_step_size=ais.DEFAULT_INITIAL_STEP_SIZE, radius=ais.DEFAULT_RADIUS,
                   bdmc_examples=0, batch_size=ais.DEFAULT_BATCH_SIZE,
                   importance_samples=DEFAULT_IMPORTANCE_SAMPLES):
  """The AIS rate-distortion curve of `model`'s decoder on `images`, as one flat `dict`.

  Args:
    model: a `vae.VAE` (its `encoder`, `decoder` and `marginal_distribution()`).
    images: array `[N, 28, 28, 1]` of the split (examples evenly spaced through it are
      used).
    seed: Python `int`.
    betas: Python `tuple` of `float`s > 0, the stored betas (1 is always added).
    num_examples: Python `int`, examples of `images` annealed.
    num_steps, num_chains, num_pilot_chains, num_leapfrog_steps, target_acceptance,
      initial_step_size, radius, batch_size: as in `ais.rate_distortion_curve`.
    bdmc_examples: Python `int`, pairs drawn from the model for BDMC (0: none).
    importance_samples: Python `tuple` of `int`s, the numbers K of the importance-weighted
      bounds NLL_K computed on the same examples (`information.importance_weighted_bound`,
      with the encoder as proposal and the seed of encoder_rate, so that NLL_1 is its
      R + D on the same draws).

  Returns:
    `dict` of numbers (nats): for each stored beta b, ais_log_z_b<b>, ais_distortion_b<b>
    and ais_rate_b<b>, means over the examples with `_stderr` over them; ais_nll (-log Z
    at beta = 1) and its `_stderr`; encoder_rate and encoder_distortion, the run's encoder
    on the same examples (one z each); ais_acceptance (the chains' mean acceptance
    probability), ais_min_effective_chains (the fewest effective chains of any example
    and beta); with `bdmc_examples`, bdmc_lower, bdmc_upper and bdmc_gap (means over the
    pairs) with `_stderr`; and every count used (ais_examples, ais_stride, ais_num_steps,
    ais_num_chains, ais_num_leapfrog_steps, bdmc_examples).
  """
  decoder, marginal = model.decoder, model.marginal_distribution()
  annealed_decoder, annealed_marginal = annealing_space(model, marginal)
  chosen = subsets.spread(images, num_examples)
  settings = dict(num_chains=num_chains, num_pilot_chains=num_pilot_chains,
                  num_leapfrog_steps=num_leapfrog_steps, target_acceptance=target_acceptance,
                  initial_step_size=initial_step_size, radius=radius, batch_size=batch_size)
  curve = ais.rate_distortion_curve(annealed_decoder, annealed_marginal, chosen,
                                    _stream(seed, 0), betas=betas, num_steps=num_steps,
                                    **settings)
  result = _curve_means(curve)
  encoder = elbo.make_evaluate(model, batch_size, seed)(chosen)
  result.update(encoder_rate=encoder['rate'], encoder_distortion=encoder['distortion'],
                ais_examples=int(chosen.shape[0]),
                ais_stride=subsets.stride(images.shape[0], num_examples),
                ais_num_steps=int(curve['schedule'].size - 1), ais_num_chains=num_chains,
                ais_num_leapfrog_steps=num_leapfrog_steps, bdmc_examples=bdmc_examples)
  result.update(_importance_weighted(model.encoder, decoder, marginal, chosen, seed,
                                     importance_samples, batch_size, -curve['log_likelihood']))
  if bdmc_examples:
    result.update(_bdmc(annealed_decoder, annealed_marginal, bdmc_examples, seed,
                        num_steps=num_steps, **settings))
  return result


def _bdmc(decoder, marginal, num_examples, seed, **settings):
  """BDMC's bounds on `num_examples` pairs (z, x) drawn from the model (stream 1 of `seed`,
  their chains stream 2): bdmc_lower, bdmc_upper and bdmc_gap, means with `_stderr`. In
  `annealing_space`'s coordinates u, x ~ d(x|f(u)) is x ~ p(x) all the same."""
  pairs = ais.simulate(decoder, marginal, num_examples, _stream(seed, 1))
  bounds = ais.bidirectional_bounds(decoder, marginal, *pairs, _stream(seed, 2), **settings)
  result = {}
  for name in ('lower', 'upper', 'gap'):
    mean = 'gap' if name == 'gap' else f'{name}_mean'
    result[f'bdmc_{name}'] = bounds[mean]
    result[f'bdmc_{name}_stderr'] = bounds[f'{mean}_stderr']
  return result


def _importance_weighted(encoder, decoder, marginal, images, seed, num_samples, batch_size,
                         ais_nll):
  """NLL_K for each K of `num_samples` on `images`, and its excess over the per-example
  AIS NLL `ais_nll` `[N]`, with standard errors over the examples."""
  bounds = information.importance_weighted_bound(encoder, decoder, marginal, images, seed,
                                                 num_samples=num_samples,
                                                 batch_size=batch_size)
  result = {}
  for k, log_likelihood in bounds['log_likelihood'].items():
    result[f'nll_k{k}'], result[f'nll_k{k}_stderr'] = _mean_and_stderr(-log_likelihood)
    result[f'nll_k{k}_minus_ais'], result[f'nll_k{k}_minus_ais_stderr'] = _mean_and_stderr(
        -log_likelihood - ais_nll)
  return result


def _curve_means(curve):
  """Each stored beta's log Z, D and R, means over the examples with standard errors
  over them (each example's own estimate carries its chains' noise), ais_nll, the
  acceptance and the fewest effective chains."""
  result = {}
  for i, beta in enumerate(curve['betas']):
    for name, source in (('log_z', 'log_normalizer'), ('distortion', 'distortion'),
                         ('rate', 'rate')):
      result[_key(name, beta)], result[_key(name, beta) + '_stderr'] = _mean_and_stderr(
          curve[source][i])
  result['ais_nll'], result['ais_nll_stderr'] = _mean_and_stderr(-curve['log_likelihood'])
  result['ais_acceptance'] = float(np.mean(curve['acceptance']))
  result['ais_min_effective_chains'] = float(np.min(curve['effective_chains']))
  return result


def rate_gap_bounds(beta, rate, distortion, encoder_rate, encoder_distortion):
  """Bounds on an encoder's distance above its decoder's curve, in nats of rate at equal
  distortion: R_e - R*(D_e), where R*(D) is the least rate of any encoder at distortion D
  with the same decoder and marginal.

  The curve's points alone bracket R*(D_e). Each point's encoder p_b minimizes R + b D over
  all encoders, so R*(D) >= R_b + b (D_b - D) at every D (the curve lies above its
  supporting lines); and R* is convex (mixing encoders mixes their R and D, and KL is convex)
  and non-increasing, so between two points it lies below their chord, and past the largest
  D_b below that point's rate. Hence, with the means over examples as the curve of the
  examples together (their sums obey the same two facts),

    upper = min_b [R_e - R_b - b (D_b - D_e)]     (at D_e = D_b, upper = lower = R_e - R_b)
    lower = R_e - chord(D_e),  R_e - R_b of the largest D_b past it,  NaN below the least D_b.

  Exact for the true curve; AIS's points carry its errors (its log Z is low in expectation,
  so each R_b + b D_b = -log Z_b is high and `upper` low by as much).

  Args:
    beta, rate, distortion: arrays `[B]`, the curve's points, in any order.
    encoder_rate, encoder_distortion: floats, the encoder's point on the same examples.

  Returns:
    `(lower, upper)`, floats (nats).
  """
  order = np.argsort(distortion)
  beta, rate, distortion = (np.asarray(a, np.float64)[order] for a in (beta, rate, distortion))
  upper = float(np.min(encoder_rate - rate - beta * (distortion - encoder_distortion)))
  if encoder_distortion < distortion[0]:
    return math.nan, upper
  if encoder_distortion > distortion[-1]:
    return float(encoder_rate - rate[-1]), upper
  return float(encoder_rate - np.interp(encoder_distortion, distortion, rate)), upper


def _mean_and_stderr(values):
  """Mean of `values` and its standard error over them (0 for one value)."""
  values = np.asarray(values, np.float64)
  stderr = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.
  return float(values.mean()), float(stderr)


@gin.configurable(denylist=['run', 'model_dir', 'split', 'overwrite'])
@domains.checked(max_examples=domains.optional(domains.POSITIVE_INT))
def record_rd_curve(run, model_dir, split='test', overwrite=False, max_examples=None):
  """Computes `rd_curve_suite` on a restored run's split and records it with the run.

  The curve is taken on examples spread through those that `evaluate_run` evaluates
  (`evaluate_run.evaluation_images`), with the seed that `evaluate_run` gives the
  information suite.

  Args:
    run: `restore.RestoredRun`, the run (from `restore.restore_run(model_dir)`).
    model_dir: Python `str`, the run's directory (a flag, not gin-bindable).
    split: Python `str`, the split (a flag).
    overwrite: Python `bool`, whether an existing record of `split` may be replaced (a
      flag).
    max_examples: Python `int` or `None` (the whole split): the examples are spread through
      the first `max_examples` of the split.

  Returns:
    The record, as written to `rd_curve.json`: step, epoch, split, num_examples (the
    examples the annealed ones are spread through) and the suite's numbers.

  Raises:
    UserError: if another process (training) holds the run's lock, or `split` has a record
      and not `overwrite` (checked before anything is computed).
  """
  with run_dir.RunLock(model_dir):  # One writer of the run at a time.
    run_record.check_rd_curve_absent(model_dir, split, overwrite)
    images = evaluate_run.evaluation_images(run, split, max_examples)
    result = rd_curve_suite(run.model, images, run.settings['seed'] + 1)
    record = dict(step=run.step, epoch=run.step / run.steps_per_epoch, split=split,
                  num_examples=int(images.shape[0]), **result)
    run_record.write_rd_curve(model_dir, split, record)
    evaluate_run.write_scalars(model_dir, run.step, f'rd_curve/{split}', result)
  return record
