"""Evaluation of the LiBI experiments' models: every restart of a `SyntheticVAE`.

Yacoby, Pan & Doshi-Velez (2020, Appendix E) keep, of each setting's random restarts, the
one preferred by its method's own objective on the validation split, and report its test
log-likelihood (importance sampling, q_phi's variance inflated 2x, S = 5000; eq. 48) and
the smooth k-NN two-sample statistic between test data and model samples. This module
computes these for every restart of a trained `models.synthetic.SyntheticVAE`, and beyond
the paper: the exact test log-likelihood (every model has a 2-D latent: closed form or
quadrature, `statistics.exact_likelihood`), which eq. 48 misses by tens of nats on
CubicJTEx; and the two quantities of the paper's pathologies (Section 3), the mutual
information I_q(X;Z) of the encoder and the aggregate-posterior gap KL(q(z) || p(z))
(Hoffman & Johnson 2016), both on the test points (`information.mutual_information`,
capped at log 500) and under the known data distribution (`statistics.population`,
uncapped). The importance-sampled likelihood and the information on the test points are
computed for all restarts at once, each restart's the numbers of its own estimator; a
batched run's members (`restarts_suite.groups`) are evaluated one data set at a time, each
as a restart of its setting's run alone.

It also gives what the ground-truth reference and the paper's posterior figures
(Appendix B, Figures 2-5) need: `fit_inference` (q_phi fitted by the ELBO with theta
frozen, how the paper obtains "the ground-truth variational posterior"), and
`posterior_means` (E[z | x] under p_theta, by self-normalised importance sampling).
"""

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.models import synthetic
from brokenelbo.statistics import exact_likelihood
from brokenelbo.statistics import information
from brokenelbo.statistics import population
from brokenelbo.statistics import two_sample
from brokenelbo.training import objectives
from brokenelbo.utils import cli

tfd = tfp.distributions

# Draws z ~ q_phi(z|x) per example for the validation objectives and the information
# estimates (not stated in the paper).
OBJECTIVE_SAMPLES = 10
INFORMATION_SAMPLES = 10
# LiBI chooses its repeats by L_64 (`training.libi`); its restarts are chosen the same way.
LIBI_SELECTION_SAMPLES = 64
# The methods of the LiBI paper's Table 1 (Appendix E), as `restarts_suite.method` names them.
METHODS = ('vae', 'beta_vae', 'beta_vae_anneal', 'lagging', 'libi')
# The exact test log-likelihood (`exact_likelihood`): the refinement stops when two levels
# agree within this many nats per point (far below the spread over data sets, ~0.03).
EXACT_TOLERANCE = 1e-4
# The population I_q(X;Z) and KL(q(z) || p(z)) (`population`): fresh x ~ p(x), and draws
# of z' per log q(z). 2000 queries give standard errors of about 0.03 nats on I_q; 256
# draws leave a Jensen correction of at most ~0.01 nats on the ground truths.
POPULATION_QUERIES = 2000
POPULATION_COMPONENTS = 256
# Encoder evaluations per call when the population estimator evaluates q_phi in NumPy.
_ENCODER_BATCH = 65536


def validation_objective(model, method, x, seed, beta=1.):
  """Each restart's own training objective on `x`, higher is better, `np.ndarray` `[R]`.

  'vae', 'lagging': the ELBO, -(R + D); 'beta_vae', 'beta_vae_anneal': -(D + beta R) with
  beta its final value (one, or one per restart); 'libi': the importance-weighted bound
  L_64 with q_phi as proposal. Averages over `OBJECTIVE_SAMPLES` draws of z per example
  (one for L_64's 64).
  """
  x = tf.constant(x, tf.float32)
  if method == 'libi':
    bound = model.log_likelihood_bound(x, tf.constant([seed, 0], tf.int64),
                                       LIBI_SELECTION_SAMPLES)
    return tf.reduce_mean(bound, axis=-1).numpy().astype(np.float64)
  if method not in METHODS:
    raise errors.UserError(f'unknown method {method!r}; choose from {", ".join(METHODS)}')
  weight = np.asarray(1. if method in ('vae', 'lagging') else beta, np.float32)
  weight = tf.constant(np.reshape(np.broadcast_to(weight, [model.restarts]), [-1, 1]))
  total = np.zeros(model.restarts)
  for k in range(OBJECTIVE_SAMPLES):
    rate, distortion = model.rate_distortion(x, tf.constant([seed, k], tf.int64))
    total += -tf.reduce_mean(distortion + weight * rate, axis=-1).numpy()
  return total / OBJECTIVE_SAMPLES


def sampler(model, restart):
  """`sample_fn(n, rng)` for `two_sample.average_smooth_knn`: x ~ p_theta(x) of one
  restart (z ~ N(0, I), then x = f_theta(z) + noise, the randomness from `rng`)."""
  parts = model.parts(restart)
  noise_scale = np.sqrt(data.ground_truth(model.dataset).noise_variance)

  def sample_fn(n, rng):
    z = rng.standard_normal((n, synthetic.LATENT_DIM)).astype(np.float32)
    mean = parts.decoder(tf.constant(z)).mean().numpy().astype(np.float64)
    return mean + noise_scale * rng.standard_normal(mean.shape)

  return sample_fn


def estimate_log_likelihood(model, images, seed, num_samples=synthetic.TEST_NUM_SAMPLES,
                            variance_inflation=synthetic.TEST_VARIANCE_INFLATION,
                            batch_size=500, samples_per_chunk=100):
  """The importance-sampled test log-likelihood of every restart (Appendix E, eq. 48).

  (1/N) sum_n log (1/S) sum_s p_theta(x_n|z_s) p(z_s) / q'(z_s|x_n), z_s ~ q', where q' is
  q_phi with its variance multiplied by `variance_inflation`: for each restart, the number
  that `information.importance_weighted_bound` gives on its `parts` with this seed (the
  same draws and chunks), computed for all restarts at once. Every restart uses the same
  seed, so draw s is loc + scale * eps_s with the same standard normal eps_s for all; one
  compiled call per chunk of draws serves every restart (or member of a batched run).

  Args:
    model: a `SyntheticVAE` that takes `images` (no `member_datasets`:
      `SyntheticVAE.select_members` gives one data set's members).
    images: array `[N, D]`.
    seed: Python `int` or shape-`[2]` integer `Tensor` (as `information` takes it).
    num_samples: Python `int`, S (paper: 5000).
    variance_inflation: Python `float` (paper: 2).
    batch_size, samples_per_chunk: Python `int`s, examples and draws per call (the
      examples per batch are part of the seeding, as in `information`).

  Returns:
    `dict` of `np.ndarray`s: log_likelihood `[R]`, nats per example; stderr `[R]`, its
    standard error over the examples; per_example `[R, N]`.
  """
  segment = _importance_segment(model, float(np.sqrt(variance_inflation)))
  ends = sorted({num_samples, *range(samples_per_chunk, num_samples, samples_per_chunk)})
  per_example = []
  for batch, x in information.batches(images, batch_size):
    batch_seed = tf.random.experimental.stateless_fold_in(information.base_seed(seed),
                                                          tf.cast(batch, tf.int64))
    total, start = -np.inf, 0
    for end in ends:  # A running logsumexp over the chunks, as `information`'s stream.
      total = np.logaddexp(total, segment(x, batch_seed,
                                          tf.range(start, end, dtype=tf.int32)).numpy())
      start = end
    per_example.append(total - np.log(num_samples))
  per_example = np.concatenate(per_example, axis=1).astype(np.float64)
  return dict(log_likelihood=per_example.mean(axis=1),
              stderr=per_example.std(axis=1, ddof=1) / np.sqrt(per_example.shape[1]),
              per_example=per_example)


def _importance_segment(model, scale_factor):
  """`segment(x, seed, indices)` -> `[R, B]`: logsumexp over the draws k in `indices` of
  log p_theta(x|z_k) + log p(z_k) - log q'(z_k|x) for every restart, z_k = loc + scale
  eps_k with eps_k the draw of seed `fold_in(seed, k)` (`information._draws`'s, for one
  restart's q' of batch `[B]`), q' q_phi with its scale times `scale_factor`."""

  @tf.function(reduce_retracing=True, autograph=False)
  def segment(x, seed, indices):
    proposal = model.posterior(x, scale_factor=scale_factor)        # Batch [R, B].
    loc, scale = proposal.distribution.loc, proposal.distribution.scale
    standard = tfd.Normal(tf.zeros_like(loc[0]), 1.)

    def log_weights(k):
      noise = standard.sample(
          seed=tf.random.experimental.stateless_fold_in(seed, tf.cast(k, tf.int32)))
      z = noise * scale + loc
      return (model.likelihood(z).log_prob(x) + model.prior.log_prob(z)
              - proposal.log_prob(z))

    return tf.reduce_logsumexp(tf.map_fn(log_weights, indices,
                                         fn_output_signature=tf.float32), axis=0)

  return segment


def evaluate_restarts(model, x_test, seed, num_samples=synthetic.TEST_NUM_SAMPLES,
                      exact_tolerance=EXACT_TOLERANCE, population_queries=POPULATION_QUERIES,
                      population_components=POPULATION_COMPONENTS, detailed=None):
  """Test log-likelihood (exact and eq. 48), ELBO, I(X;Z) and KL(q(z) || p(z)) of every
  restart.

  The exact log-likelihood and the population information cost seconds per restart in
  NumPy (the rest is batched over restarts): `detailed`, a collection of restart indices,
  limits them to those restarts (the others get `None`); `None` computes them for all.

  Returns:
    `list` of `dict`s (one per restart) with `float`s in nats per example:
    exact_log_likelihood (`restart_exact_log_likelihood`, to `exact_tolerance`; not
    computed if it is `None`) with its stderr over the test examples and its integration
    error; log_likelihood (eq. 48,
    S = `num_samples`, the paper's 5000 by default; q_phi's variance inflated 2x) and its
    stderr; elbo, rate (exact KL(q || p) averaged over the examples), distortion;
    mutual_information and marginal_kl on the test points (z ~ q_phi,
    `INFORMATION_SAMPLES` per example, N = 500, so mutual_information <= log 500 = 6.21);
    population_mutual_information, population_marginal_kl and population_rate under the
    data distribution (`restart_population_information`), uncapped; each with its
    stderr; generative_mutual_information (`generative_mutual_information`; `None` where it
    has no closed form).
  """
  likelihood = estimate_log_likelihood(model, x_test, seed=seed, num_samples=num_samples)
  x = tf.constant(x_test, tf.float32)
  rate, distortion = (t.numpy().astype(np.float64).mean(axis=-1)
                      for t in model.rate_distortion(x, tf.constant([seed, 1], tf.int64)))
  generative = generative_mutual_information(model)
  results = []
  for r, info in enumerate(restart_information(model, x_test, seed)):
    if detailed is None or r in detailed:
      exact = ({} if exact_tolerance is None else
               restart_exact_log_likelihood(model, r, x_test, exact_tolerance))
      populated = restart_population_information(model, r, seed, population_queries,
                                                 population_components)
    else:
      exact = ({} if exact_tolerance is None else dict.fromkeys(_EXACT_KEYS))
      populated = dict.fromkeys(_POPULATION_KEYS)
    results.append(dict(
        **exact, log_likelihood=float(likelihood['log_likelihood'][r]),
        log_likelihood_stderr=float(likelihood['stderr'][r]),
        elbo=float(-(rate[r] + distortion[r])), rate=float(rate[r]),
        distortion=float(distortion[r]),
        mutual_information=info['mutual_information'],
        mutual_information_stderr=info['mutual_information_stderr'],
        marginal_kl=info['marginal_kl'], marginal_kl_stderr=info['marginal_kl_stderr'],
        **populated,
        generative_mutual_information=(None if generative is None else
                                       float(generative[r]))))
  return results


def _finite(params, restart):
  return all(np.all(np.isfinite(v[restart].numpy())) for v in params.values())


def restart_exact_log_likelihood(model, restart, x_test, tolerance=EXACT_TOLERANCE):
  """`exact_log_likelihood` of restart `restart`'s p_theta (`SyntheticVAE.generative_model`,
  its theta in float64); NaN for a restart whose theta is not finite."""
  if not _finite(model.theta_params(), restart):
    return dict.fromkeys(_EXACT_KEYS, float('nan'))
  return exact_log_likelihood(model.generative_model(restart), x_test, tolerance)


_EXACT_KEYS = ('exact_log_likelihood', 'exact_log_likelihood_stderr',
               'exact_log_likelihood_error')


def exact_log_likelihood(generative, x_test, tolerance=EXACT_TOLERANCE):
  """The exact test log-likelihood of a model z ~ N(0, I), x ~ N(f(z), Psi), nats per example.

  In closed form on the linear-Gaussian data sets (x ~ N(0, W^T W + Psi)), else by
  adaptive quadrature over z (`exact_likelihood.log_marginal_likelihood`, every point to
  `tolerance`).

  Args:
    generative: a `data.synthetic.GroundTruth` (the truth, or a restart's p_theta).
    x_test: array `[N, D]`.
    tolerance: Python `float`, nats.

  Returns:
    `dict` of `float`s: exact_log_likelihood, its _stderr over the examples, and its
    _error (the largest difference between the last two refinement levels of any point;
    0 for the closed form; above `tolerance` where a point did not converge).
  """
  per_example, error = exact_log_likelihoods(generative, x_test, tolerance)
  return dict(zip(_EXACT_KEYS, (float(np.mean(per_example)),
                                float(np.std(per_example, ddof=1) / np.sqrt(len(x_test))),
                                error)))


def exact_log_likelihoods(generative, x_test, tolerance=EXACT_TOLERANCE):
  """`exact_log_likelihood` point by point: (log p(x) `[N]` float64, the largest error)."""
  if hasattr(generative, 'exact_log_likelihood'):
    return generative.exact_log_likelihood(x_test), 0.
  result = exact_likelihood.log_marginal_likelihood(
      x_test, generative.mean, generative.noise_variance, tolerance=tolerance)
  return result['log_likelihood'], float(np.max(result['error']))


def numpy_encoder(model, restart):
  """Restart `restart`'s q_phi(z|x) as `encode(x) -> (loc, scale)`, `float64` `[M, 2]` each,
  for x `[M, D]` (the population estimator's interface)."""
  encoder = model.parts(restart).encoder

  def encode(x):
    locs, scales = [], []
    for i in range(0, len(x), _ENCODER_BATCH):
      posterior = encoder(tf.constant(x[i:i + _ENCODER_BATCH], tf.float32))
      locs.append(posterior.mean().numpy())
      scales.append(posterior.stddev().numpy())
    return (np.concatenate(locs).astype(np.float64),
            np.concatenate(scales).astype(np.float64))

  return encode


def restart_population_information(model, restart, seed, num_queries=POPULATION_QUERIES,
                                   num_components=POPULATION_COMPONENTS):
  """I_q(X;Z), KL(q(z) || p(z)) and the rate of restart `restart`'s q_phi under the data
  distribution (the ground truth of `model.dataset`), by `population.population_information`:
  fresh x ~ p(x), no log N cap. The same queries for every restart of a seed.

  Returns:
    `dict` of `float`s: population_mutual_information, population_marginal_kl,
    population_rate, each with its _stderr; NaN for a restart whose phi is not finite.
  """
  if not _finite(model.phi_params(), restart):
    return dict.fromkeys(_POPULATION_KEYS, float('nan'))
  truth = data.ground_truth(model.dataset)
  result = population.population_information(
      numpy_encoder(model, restart), truth.mean, truth.noise_variance, seed=[seed, 3],
      num_queries=num_queries, num_components=num_components)
  return {key: result[key[len('population_'):]] for key in _POPULATION_KEYS}


_POPULATION_KEYS = tuple(f'population_{name}{end}'
                         for name in ('mutual_information', 'marginal_kl', 'rate')
                         for end in ('', '_stderr'))


def restart_information(model, x_test, seed, encoders_per_chunk=100, latents_per_chunk=1000):
  """I_q(X;Z) and KL(q(z) || p(z)) of every restart on the test points, as
  `information.mutual_information` `dict`s (z ~ q_phi, `INFORMATION_SAMPLES` per point).

  For each restart, the numbers that `mutual_information` gives on its `parts` with seed
  `seed + 2`, one batch of all the points and its default chunks (its draws, the same
  standard normal ones scaled by each restart's q as in `estimate_log_likelihood`, and
  its sums), computed for all restarts at once: one compiled draw and one compiled
  aggregate posterior serve every restart (or member of a batched run).
  """
  num_examples = x_test.shape[0]
  x = tf.constant(x_test, tf.float32)
  seed = tf.random.experimental.stateless_fold_in(information.base_seed(seed + 2),
                                                  tf.constant(0, tf.int64))
  z, log_posterior, log_marginal = (t.numpy() for t in _information_draws(model, x, seed))
  latents = z.reshape(model.restarts, -1, synthetic.LATENT_DIM)            # [R, N S, 2]
  padding = -latents.shape[1] % latents_per_chunk
  chunks = tf.reshape(tf.pad(latents, [[0, 0], [0, padding], [0, 0]]),
                      [model.restarts, -1, latents_per_chunk, synthetic.LATENT_DIM])
  sources = np.repeat(np.arange(num_examples), INFORMATION_SAMPLES)
  source_chunks = tf.reshape(tf.pad(tf.constant(sources, tf.int32), [[0, padding]],
                                    constant_values=-1), [-1, latents_per_chunk])
  others = _others_logsumexp(model)
  log_others = np.full(latents.shape[:2], -np.inf)
  for batch, x_chunk in information.batches(x_test, encoders_per_chunk):
    chunk = others(x_chunk, tf.constant(batch * encoders_per_chunk, tf.int32), chunks,
                   source_chunks).numpy()                           # [chunks, R, L]
    log_others = np.logaddexp(log_others, np.moveaxis(chunk, 0, 1).reshape(
        model.restarts, -1)[:, :latents.shape[1]])
  # The own example's term is the numerator's log q(z|x_n) itself.
  log_aggregate = (np.logaddexp(log_others.reshape(log_posterior.shape), log_posterior)
                   - np.log(num_examples))
  terms = dict(mutual_information=log_posterior - log_aggregate,
               rate=log_posterior - log_marginal, marginal_kl=log_aggregate - log_marginal)
  results = []
  for r in range(model.restarts):
    result = dict(log_num_examples=float(np.log(num_examples)), num_examples=num_examples)
    for name, values in terms.items():
      mean = values[r].mean(axis=1).astype(np.float64)
      result[name] = float(mean.mean())
      result[f'{name}_stderr'] = float(mean.std(ddof=1) / np.sqrt(mean.size))
    results.append(result)
  return results


def _information_draws(model, x, seed):
  """`INFORMATION_SAMPLES` draws z ~ q_phi(z|x) per point of every restart, `[R, N, S,
  2]`, and their log q_phi(z|x) and log p(z) `[R, N, S]`: draw k loc + scale eps_k, eps_k
  of seed `fold_in(seed, k)` (`information._posterior_draws`' draw of one restart)."""

  @tf.function(autograph=False)
  def draw(x, seed):
    posterior = model.posterior(x)
    standard = tfd.Normal(tf.zeros_like(posterior.distribution.loc[0]), 1.)

    def one(k):
      noise = standard.sample(
          seed=tf.random.experimental.stateless_fold_in(seed, tf.cast(k, tf.int32)))
      z = noise * posterior.distribution.scale + posterior.distribution.loc
      return z, posterior.log_prob(z), model.prior.log_prob(z)

    z, log_q, log_p = tf.map_fn(one, tf.range(INFORMATION_SAMPLES),
                                fn_output_signature=(tf.float32,) * 3)
    return (tf.transpose(z, [1, 2, 0, 3]), tf.transpose(log_q, [1, 2, 0]),
            tf.transpose(log_p, [1, 2, 0]))

  return draw(x, seed)


def _others_logsumexp(model):
  """`others(x, offset, chunks, sources)` -> `[C, R, L]`: for every restart and latent z_j
  of `chunks` `[R, C, L, 2]`, log sum_n q_phi(z_j|x_n) over the points x `[B, D]` (numbered
  from `offset`) but its own, `sources[c, l]` (`information._log_aggregate_posterior`'s
  blocks, for every restart at once)."""

  @tf.function(reduce_retracing=True, autograph=False)
  def others(x, offset, chunks, sources):
    posterior = model.posterior(x).distribution                          # [R, B, 2]
    columns = offset + tf.range(tf.shape(x)[0])
    posteriors = tfd.Independent(tfd.Normal(posterior.loc[:, tf.newaxis],
                                            posterior.scale[:, tf.newaxis]), 1)

    def one(c):
      log_probs = posteriors.log_prob(chunks[:, c, :, tf.newaxis])       # [R, L, B]
      own = tf.equal(sources[c][:, tf.newaxis], columns[tf.newaxis, :])
      return tf.reduce_logsumexp(tf.where(own, tf.constant(-np.inf, log_probs.dtype),
                                          log_probs), axis=-1)

    return tf.map_fn(one, tf.range(tf.shape(chunks)[1]), fn_output_signature=tf.float32)

  return others


def generative_mutual_information(model):
  """I_theta(X;Z) of each restart's generative model, exactly, `np.ndarray` `[R]`; `None`
  where f_theta is not linear (CubicJTEx, Mobius).

  For x = z W + eps, z ~ N(0, I), eps ~ N(0, Psi): I(X;Z) = H(X) - H(X|Z) =
  1/2 [log det(W^T W + Psi) - log det Psi] (eq. 22 of the paper for LinearJTEx, where
  W^T W = L L^T = A A^T + B and Psi = sigma^2 I - B). Pathology 1 of the paper is a model
  whose latent code carries little of x: a small I_theta.
  """
  if model.dataset not in ('linear_jtex', 'gaussian'):
    return None
  truth = data.ground_truth(model.dataset)
  a = model.theta_params()['a'].numpy().astype(np.float64)
  noise = np.diag(truth.noise_variance)
  if model.dataset == 'linear_jtex':
    signal = a @ np.swapaxes(a, -1, -2) + truth.b          # L L^T = A A^T + B, [R, 2, 2]
  else:
    signal = np.swapaxes(a, -1, -2) @ a                     # A^T A, [R, 4, 4]
  _, log_det = np.linalg.slogdet(signal + noise)
  return 0.5 * (log_det - np.sum(np.log(truth.noise_variance)))


def knn_statistic(model, restart, x_test, num_draws, seed):
  """The smooth k-NN statistic between test points and samples of restart `restart`,
  averaged over `num_draws` draws of 100 + 100 points (`two_sample`)."""
  result = two_sample.average_smooth_knn(x_test, sampler(model, restart), num_draws,
                                         seed=seed)
  return dict(mean=result['mean'], stderr=result['stderr'], num_draws=num_draws)


def fit_inference(model, x, steps=5000, learning_rate=0.05, seed=0):
  """Fits q_phi of every restart by the ELBO on `x` with theta frozen (Adam with a
  cosine-decayed learning rate, full batch).

  The paper's ground-truth variational posterior: theta at its true value, phi minimising
  L(theta, phi) alone (Appendix E, "Synthetic Data"; Appendix B, "Means of q_phiGT").
  Returns the final negative ELBO per restart, `np.ndarray` `[R]`.
  """
  x = tf.constant(x, tf.float32)
  variables = list(model.phi.values())
  # Cosine decay to 0: single-draw gradients keep a constant-rate Adam jittering around
  # the optimum, by about 0.1 nats here.
  optimizer = tf.keras.optimizers.Adam(
      tf.keras.optimizers.schedules.CosineDecay(learning_rate, steps))

  @tf.function(autograph=False)  # Traced as written.
  def step(i):
    with tf.GradientTape() as tape:
      rate, distortion = model.rate_distortion(
          x, tf.stack([tf.constant(seed, tf.int64), i]), stop_theta=True)
      loss = tf.reduce_mean(rate + distortion, axis=-1)
      total = tf.reduce_sum(loss)
    optimizer.apply_gradients(zip(tape.gradient(total, variables), variables))
    return loss

  loss = None
  for i in range(steps):
    loss = step(tf.constant(i, tf.int64))
  return loss.numpy()


def posterior_means(model, x, seed, num_samples=5000, variance_inflation=4., restarts=None):
  """E[z | x] under each restart's p_theta(z|x), by self-normalised importance sampling:
  `np.ndarray` `[R, N, 2]`.

  The proposal is q_phi(z|x) with its variance multiplied by `variance_inflation`. Self-
  normalised weights need a proposal wider than the posterior in every direction, and a
  mean-field q is narrower than a correlated posterior along the correlation (its
  variances are 1 / (S^-1)_ii, not S_ii): with the 2x of the likelihood estimate, rare
  huge weights spoil single means on LinearJTEx (posterior correlation -0.81; errors up
  to 2.8 posterior sd over its 500 test points). 4x covers correlations up to 0.87
  (1 - rho^2 >= 1/4): errors below 0.08 sd there, against 0.11 at 16x and 0.16 at 64x,
  where fewer draws land near the posterior. `restarts`: the restarts to compute (all by
  default); the result has one row per restart computed.
  """
  x = tf.constant(x, tf.float32)
  means = []
  for r in range(model.restarts) if restarts is None else restarts:
    parts = model.parts(r, variance_inflation)
    proposal = parts.proposal(x)
    z = proposal.sample(num_samples, seed=(seed, r))  # [S, N, 2]
    log_w = (parts.decoder(tf.reshape(z, [-1, 2])).log_prob(
        tf.tile(x, [num_samples, 1])).numpy().reshape(num_samples, -1)
             + parts.marginal.log_prob(z).numpy() - proposal.log_prob(z).numpy())
    w = np.exp(log_w - log_w.max(axis=0))
    w /= w.sum(axis=0)
    means.append(np.einsum('sn,snd->nd', w, z.numpy()))
  return np.stack(means)


def ground_truth_model(dataset, restarts=1, seed=0):
  """A `SyntheticVAE` of `dataset` with theta at the ground truth (q_phi still to fit)."""
  model = synthetic.SyntheticVAE(dataset=dataset, restarts=restarts, seed=seed)
  model.assign(theta=synthetic.ground_truth_theta(dataset))
  return model


def truth_reference(dataset, index, knn_draws, seed=0, fit_steps=5000,
                    num_samples=synthetic.TEST_NUM_SAMPLES, exact_tolerance=EXACT_TOLERANCE,
                    population_queries=POPULATION_QUERIES,
                    population_components=POPULATION_COMPONENTS):
  """The ground truth's numbers on data set (`dataset`, `index`): those of
  `evaluate_restarts` and the smooth k-NN statistic of its samples.

  q_phi is the best mean-field Gaussian in closed form on the linear-Gaussian data sets
  (`mean_field_posterior_phi`), else fitted to the true theta (`fit_inference`). The
  record's log_likelihood is the exact one (closed form, or quadrature: its
  log_likelihood_kind says which), importance_log_likelihood the paper's estimate
  (eq. 48, S = `num_samples`, with that q_phi).
  """
  x_train = data.synthetic('train', name=dataset, index=index)
  x_test = data.synthetic('test', name=dataset, index=index)
  model = ground_truth_model(dataset)
  truth = data.ground_truth(dataset)
  closed_form = hasattr(truth, 'exact_log_likelihood')
  if closed_form:
    model.assign(phi=synthetic.mean_field_posterior_phi(dataset))
  else:
    fit_inference(model, x_train, steps=fit_steps, seed=seed)
  restart = evaluate_restarts(model, x_test, seed, num_samples, None, population_queries,
                              population_components)[0]
  restart.update(exact_log_likelihood(truth, x_test, exact_tolerance))  # theta in float64.
  restart['importance_log_likelihood'] = restart['log_likelihood']
  restart['importance_log_likelihood_stderr'] = restart['log_likelihood_stderr']
  restart['log_likelihood'] = restart['exact_log_likelihood']
  restart['log_likelihood_stderr'] = restart['exact_log_likelihood_stderr']
  kind = 'exact' if closed_form else f'exact (quadrature, tolerance {exact_tolerance:g})'
  rng = np.random.default_rng([seed, index])
  knn = two_sample.average_smooth_knn(
      x_test, lambda n, g: truth.sample(n, int(g.integers(2**31)))[0], knn_draws, seed=rng)
  return dict(dataset=dataset, index=index, log_likelihood_kind=kind,
              knn=dict(mean=knn['mean'], stderr=knn['stderr'], num_draws=knn_draws),
              **restart)


def select_restart(validation_objective):
  """The index of the restart that its method's validation objective prefers (the
  highest finite value), or `None` if none is finite."""
  objective = np.asarray(validation_objective, np.float64)
  if not np.any(np.isfinite(objective)):
    return None
  return int(np.nanargmax(np.where(np.isfinite(objective), objective, -np.inf)))


@gin.configurable(denylist=['model', 'images', 'seed'])
@domains.checked(method=domains.one_of(*METHODS), likelihood_samples=domains.POSITIVE_INT,
                 knn_draws=domains.POSITIVE_INT, exact_tolerance=domains.POSITIVE,
                 population_queries=domains.integer(2),
                 population_components=domains.POSITIVE_INT,
                 groups=domains.optional(domains.tuple_of(domains.NON_NEGATIVE_INT)),
                 every_restart=domains.BOOL)
def restarts_suite(model, images, seed, method=gin.REQUIRED,
                   likelihood_samples=synthetic.TEST_NUM_SAMPLES, knn_draws=100,
                   exact_tolerance=EXACT_TOLERANCE, population_queries=POPULATION_QUERIES,
                   population_components=POPULATION_COMPONENTS, groups=None, every_restart=False):
  """The LiBI paper's evaluation of a trained setting (Appendix E), for `evaluate_run`.

  Every restart's validation objective (`validation_objective`, beta at its final value)
  and test numbers (`evaluate_restarts`: the exact log-likelihood and eq. 48's estimate
  with S = `likelihood_samples`, ELBO, I(X;Z) and KL(q(z) || p(z)) on the test points and
  under the data distribution, I_theta(X;Z)); the restart the objective prefers
  (`select_restart`) and its smooth k-NN statistic over `knn_draws` draws. Table 1 reads
  the kept restart alone: the exact log-likelihood and the population information (NumPy,
  seconds per restart) are the kept restart's only, unless `every_restart`.

  A batched run (a model of members on stacked data `[N, K, D]`) holds several settings and
  data sets: each group of `groups` (one setting on one data set) gets the numbers above as
  its run alone would (the members of one data set together, `SyntheticVAE.select_members`).

  Args:
    model: the run's `SyntheticVAE`.
    images: the test split `[N, D]`, or stacked `[N, K, D]` for a model of members.
    seed: Python `int`, the seed of every draw.
    method: Python `str`, the run's method (`experiments.libi_table.METHODS`).
    likelihood_samples: Python `int`, S (paper: 5000).
    knn_draws: Python `int`.
    exact_tolerance: Python `float` > 0, nats: the quadrature's tolerance per test point.
    population_queries: Python `int` >= 2, fresh x ~ p(x) of the population I_q and KL.
    population_components: Python `int`, draws of z' per estimate of log q(z) there.
    groups: `None` for a run of one setting; for a model of members, Python `tuple` of one
      `int` per member, its group (`experiments.libi_table.Batch.groups`).
    every_restart: Python `bool`, those two for every restart (else `None` but the kept's).

  Returns:
    `dict`: restarts (`list` of `dict`s), validation_objective, selected (`int` or
    `None`), knn (`dict(mean, stderr, num_draws)`); with `groups`, `dict(groups=[...])`,
    one such `dict` per group in the order of their numbers, each with its `members` too.

  Raises:
    UserError: for `groups` that do not suit the model (`_check_groups`).
  """
  beta = np.asarray(cli.configured_arguments(objectives.beta_schedule)['beta'], np.float64)
  x_val = data.synthetic('validation')

  def evaluate(one, x_test, objective, runs):
    """The test numbers of a model of one data set of `runs` (restarts' indices per run)."""
    return evaluate_restarts(one, x_test, seed, likelihood_samples, exact_tolerance,
                             population_queries, population_components,
                             None if every_restart else _kept_rows(objective, runs))

  _check_groups(model, groups)
  if groups is None:
    objective = validation_objective(model, method, x_val, seed, beta)
    rows = list(range(model.restarts))
    return _kept(model, rows, evaluate(model, images, objective, [rows]), objective, images,
                 knn_draws, seed)
  by_dataset = {k: _members_of_dataset(model, groups, k, method, x_val, images, seed, beta,
                                       evaluate)
                for k in sorted(set(model.member_datasets))}
  return dict(groups=[_group_suite(model, groups, group, by_dataset, images, knn_draws, seed)
                      for group in sorted(set(groups))])


def _kept_rows(objective, runs):
  """The restart each run keeps (`select_restart` of `objective`), as a `set` of indices;
  `runs`, each run's restarts' indices."""
  kept = set()
  for run in runs:
    selected = select_restart(objective[run])
    if selected is not None:
      kept.add(run[selected])
  return kept


def _members_of_dataset(model, groups, k, method, x_val, images, seed, beta, evaluate):
  """The members of data set `k` of a model of members, evaluated together on its splits:
  (their indices, their model, their test numbers `evaluate(model, x_test, objective,
  runs)`, their validation objective)."""
  members = [m for m, d in enumerate(model.member_datasets) if d == k]
  one = model.select_members(members)
  objective = validation_objective(one, method, x_val[:, k], seed,
                                   beta if beta.ndim == 0 else beta[members])
  runs = [[i for i, m in enumerate(members) if groups[m] == group]
          for group in sorted({groups[m] for m in members})]
  return members, one, evaluate(one, images[:, k], objective, runs), objective


def _group_suite(model, groups, group, by_dataset, images, knn_draws, seed):
  """The suite of group `group` of a model of members (`restarts_suite`), from
  `by_dataset`: per data set, its members, their model, test numbers and objective."""
  members = [m for m, g in enumerate(groups) if g == group]
  k = model.member_datasets[members[0]]
  among, one, restarts, objective = by_dataset[k]
  rows = [among.index(m) for m in members]
  return dict(members=members, **_kept(one, rows, [restarts[i] for i in rows],
                                       objective[rows], images[:, k], knn_draws, seed))


def _check_groups(model, groups):
  """Raises `UserError` unless `groups` (`restarts_suite.groups`) suits `model`: none for
  a model of one data set, one per member, each group of one data set, for one of
  members."""
  members = model.member_datasets
  if groups is None and members is not None:
    raise errors.UserError('a model of members (SyntheticVAE.member_datasets) needs '
                           'restarts_suite.groups, the setting of each member')
  if groups is None:
    return
  if members is None or len(groups) != model.restarts:
    raise errors.UserError(f'restarts_suite.groups = {groups!r}: must give one group per '
                           'member of a model of members (SyntheticVAE.member_datasets)')
  for group in set(groups):
    if len({k for g, k in zip(groups, members) if g == group}) > 1:
      raise errors.UserError(f'restarts_suite.groups = {groups!r}: group {group} has '
                             'members of several data sets')


def _kept(model, rows, restarts, objective, images, knn_draws, seed):
  """The suite of one setting: its restarts' numbers `restarts` and validation
  `objective`, the kept one and the k-NN statistic of its samples; restart i of the
  setting is restart `rows[i]` of `model`."""
  for values, value in zip(restarts, objective):
    values['validation_objective'] = float(value)
  selected = select_restart(objective)
  knn = (dict(mean=None, stderr=None, num_draws=0) if selected is None
         else knn_statistic(model, list(rows)[selected], images, knn_draws, seed))
  return dict(restarts=restarts, validation_objective=[float(v) for v in objective],
              selected=selected, knn=knn)
