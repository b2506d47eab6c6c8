"""Information measures of a trained VAE beyond R and D: likelihood bounds and mutual information.

The estimators take a VAE's three parts as plain objects: encoder(x) -> `tfd.Distribution`
e(z|x), batch shape `[B]`; decoder(z) -> `tfd.Distribution` d(x|z), `log_prob(x)` ->
`[B]` (z always `[B, latent]`); marginal, a `tfd.Distribution` m(z). In nats per example:

  L_K(x)   = log (1/K) sum_k d(x|z_k) m(z_k) / q(z_k|x),  z_k ~ q(z|x)  (Burda et al. 2016)
  I_e      = E_{p(x) e(z|x)} [log e(z|x) - log e(z)]                  (Section 2, eq. 1)
  R        = E_{p(x) e(z|x)} [log e(z|x) - log m(z)]                  (Section 2, eq. 3c)
  KL(e(z) || m(z)) = R - I_e                               (Hoffman & Johnson 2016)
  E <= I_d(X; Z) <= G                                      (Appendix C, eqs. 6-9)

with e(z) the aggregate posterior; each with a Monte Carlo standard error (the standard
deviation of its per-example terms over the square root of their number). `seed` is a
shape-`[2]` integer `Tensor`, or a Python `int` s for `[s, 0]`; draw k of batch b uses
`stateless_fold_in(stateless_fold_in(seed, b), k)` (`seeds.step_seed(s, b, replica=k)`),
however the work is chunked; chunk sizes bound the memory. More: docs/methods.md.

#### References

[1] Alemi, Poole, Fischer, Dillon, Saurous, Murphy. Fixing a Broken ELBO. ICML 2018.
[2] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
[3] Hoffman, Johnson. ELBO surgery. NIPS Workshop on Approximate Bayesian Inference, 2016.
[4] Poole, Ozair, van den Oord, Alemi, Tucker. On Variational Bounds of MI. ICML 2019.
"""

import numpy as np
import tensorflow as tf

# The compiled functions below are traced as written, without AutoGraph: their loops are
# Python's (unrolled at tracing) or `tf.map_fn`, so converting their source would only cost
# time at every process's start.

# Numbers of importance samples reported by default: the one-sample ELBO, and two
# tightenings of it an order of magnitude apart (Burda et al. 2016 report K = 1, 5, 50 and
# estimate log p(x) with K = 5000).
DEFAULT_NUM_SAMPLES = (1, 10, 100)
# Examples per batch: the likelihood bounds' decoder sees one draw per example, 100 latents
# per call, the batch size of training and evaluation (see `_importance_chunk`).
DEFAULT_BATCH_SIZE = 100
# Draws per example per chunk: the proposal's draws and the marginal's densities come 1000
# latents at a time.
DEFAULT_SAMPLES_PER_CHUNK = 10


def importance_weighted_bound(encoder, decoder, marginal, images, seed,
                              num_samples=DEFAULT_NUM_SAMPLES, proposal=None,
                              batch_size=DEFAULT_BATCH_SIZE,
                              samples_per_chunk=DEFAULT_SAMPLES_PER_CHUNK):
  """The importance-weighted bound on log-likelihood, for several numbers of samples.

  Per example, with K draws z_k ~ q(z|x) from a proposal q (the encoder by default):

    L_K(x) = logmeanexp_k [log d(x|z_k) + log m(z_k) - log q(z_k|x)] <= log g(x),

  where g(x) = E_m(z) d(x|z) is the model's marginal likelihood. E[L_K] rises with K to
  log g(x) (Burda et al. 2016, Theorem 1), and L_1 with q = e is the one-sample ELBO,
  -(R + D) of Section 2, eq. 3, with the very z of `elbo.make_evaluate` for the same seed
  and batch size. All K share one stream of draws (the first K of them), summed by a
  streaming logsumexp over chunks of `samples_per_chunk` draws, so that K = 5000 never
  holds more than `[samples_per_chunk, batch_size]` latents.

  Args:
    encoder: callable `encoder(x)` -> `tfd.Distribution` e(z|x); the default proposal.
    decoder: callable `decoder(z)` -> `tfd.Distribution` d(x|z), for z `[B, latent]`.
    marginal: `tfd.Distribution` m(z).
    images: array `[N, ...]` of examples x.
    seed: shape-`[2]` integer `Tensor` or Python `int` (see the module docstring).
    num_samples: Python `int` or sequence of `int`s, the numbers K of draws per example.
    proposal: callable `proposal(x)` -> `tfd.Distribution` q(z|x), e.g. the encoder with
      its scale inflated (Yacoby et al. 2020 use 2x the variance). Default: `encoder`.
    batch_size: Python `int`, examples per batch (part of the seeding, as in `elbo`).
    samples_per_chunk: Python `int`, draws per example evaluated at once (memory only).

  Returns:
    `dict` with, for each K (Python `int` keys, ascending):
      nll: `{K: float}`, NLL_K = -(1/N) sum_n L_K(x_n), nats.
      nll_stderr: `{K: float}`, its standard error over the examples.
      log_likelihood: `{K: np.ndarray [N]}`, the per-example L_K(x_n).
  """
  proposal = encoder if proposal is None else proposal
  ks = _sample_counts(num_samples)
  per_example = {k: [] for k in ks}
  stream = _importance_stream(decoder, marginal, proposal, ks, samples_per_chunk)
  for batch, x in batches(images, batch_size):
    for k, bound in stream(x, _fold(base_seed(seed), batch, tf.int64)).items():
      per_example[k].append(bound)
  log_likelihood = {k: np.concatenate(per_example[k]) for k in ks}
  stats = {k: _mean_and_stderr(-log_likelihood[k]) for k in ks}
  return dict(nll={k: stats[k][0] for k in ks}, nll_stderr={k: stats[k][1] for k in ks},
              log_likelihood=log_likelihood)


def mutual_information(encoder, marginal, images, seed, num_samples=1,
                       batch_size=DEFAULT_BATCH_SIZE, encoders_per_chunk=DEFAULT_BATCH_SIZE,
                       latents_per_chunk=1000):
  """The representational mutual information I_e, the rate, and the marginal gap.

  With e(z) = (1/N) sum_n e(z|x_n) the aggregate posterior of the N given examples
  (Section 2) and z ~ e(z|x_n), `num_samples` draws per example:

    I_e = (1/N) sum_n E [log e(z|x_n) - log e(z)]                      (eq. 1)
    R   = (1/N) sum_n E [log e(z|x_n) - log m(z)]                      (eq. 3c)
    KL(e(z) || m(z)) = R - I_e = (1/N) sum_n E [log e(z) - log m(z)]   (Hoffman & Johnson)

  from the same draws. log e(z) is a logsumexp over all N encoder distributions, in chunks
  of `encoders_per_chunk` examples against `latents_per_chunk` latents at a time, its own
  example's term being the numerator's log e(z|x_n) itself. Each term of I_e is at most
  log N (the sum over n includes n itself), so I_e <= log N, exactly: with
  an informative encoder the estimate saturates at log N, and N must be large against
  exp(I_e). The estimate is InfoNCE with the encoder as critic (Poole et al. 2019): a
  lower bound on the population I_e in expectation, low by O(1/N) (by chi^2 / (2N) to
  leading order, chi^2 that of p(x) e(z|x) from p(x) e(z)).

  The encoder's distributions must broadcast: `encoder(x).log_prob(z)` with z of shape
  `[L, 1, latent]` and batch `[C]` gives `[L, C]` (true of TFP's distributions, and of
  flows whose bijectors take extra leading dimensions). The encoder runs twice on every
  example: once to draw its z, once as a component of e(z).

  Args:
    encoder: callable `encoder(x)` -> `tfd.Distribution` e(z|x).
    marginal: `tfd.Distribution` m(z).
    images: array `[N, ...]` of examples x.
    seed: shape-`[2]` integer `Tensor` or Python `int` (see the module docstring).
    num_samples: Python `int`, draws z ~ e(z|x) per example.
    batch_size: Python `int`, examples per batch when drawing z (part of the seeding).
    encoders_per_chunk: Python `int`, encoder distributions e(z|x_n) evaluated at once.
    latents_per_chunk: Python `int`, latents evaluated at once against those.

  Returns:
    `dict` with `float`s in nats: mutual_information, rate, marginal_kl, each with its
    `_stderr`; log_num_examples (log N, the cap of I_e); num_examples (N).
  """
  draw = _posterior_draws(encoder, marginal, num_samples)
  drawn = [draw(x, _fold(base_seed(seed), batch, tf.int64)) for batch, x in
           batches(images, batch_size)]
  latents, log_posterior, log_marginal = (np.concatenate(parts) for parts in zip(*drawn))
  num_examples = log_posterior.shape[0]
  sources = np.repeat(np.arange(num_examples), log_posterior.shape[1])
  log_others = _log_aggregate_posterior(
      encoder, images, latents.reshape([-1, *latents.shape[2:]]), sources,
      encoders_per_chunk, latents_per_chunk).reshape(log_posterior.shape)
  # The own example's term is the numerator's log e(z|x_n) itself.
  log_aggregate = np.logaddexp(log_others, log_posterior) - np.log(num_examples)
  terms = dict(mutual_information=log_posterior - log_aggregate,
               rate=log_posterior - log_marginal,
               marginal_kl=log_aggregate - log_marginal)
  result = dict(log_num_examples=float(np.log(num_examples)), num_examples=num_examples)
  for name, values in terms.items():
    result[name], result[f'{name}_stderr'] = _mean_and_stderr(values.mean(axis=1))
  return result


def active_units(encoder, images, threshold=0.01, batch_size=DEFAULT_BATCH_SIZE,
                 num_samples=1000, seed=0):
  """The number of active latent dimensions, those with Var_x E[z_i|x] > threshold.

  A dimension whose posterior mean does not move with x carries no information about it
  (Burda et al. 2016, with their threshold 0.01). The variance is over the N given
  examples (divided by N). E[z|x] is the encoder's `.mean()`; where the distribution has
  none (a flow, whose `mean()` raises `NotImplementedError`), it is the mean of
  `num_samples` draws, and the variance is corrected for their noise: the mean over
  examples of s_n^2 / num_samples (s_n^2 the sample variance of example n's draws), times
  (N - 1) / N, is subtracted, which makes the estimate unbiased; what noise is left falls
  as 1 / sqrt(num_samples N) for active dimensions, 1 / (num_samples sqrt(N)) for
  inactive ones.

  Args:
    encoder: callable `encoder(x)` -> `tfd.Distribution` e(z|x) (events flattened).
    images: array `[N, ...]` of examples x.
    threshold: Python `float`, the variance above which a dimension is active.
    batch_size: Python `int`, examples per encoder call.
    num_samples: Python `int` >= 2, draws per example when there is no analytic mean.
    seed: shape-`[2]` integer `Tensor` or Python `int`, for those draws.

  Returns:
    `dict`: active_units (`int`), variances (`np.ndarray [latent]`, Var_x E[z_i|x]),
    analytic_mean (`bool`, whether `.mean()` was used).
  """
  moments = _posterior_means(encoder, num_samples)
  count, mean, sum_squares, noise, analytic = 0, 0., 0., 0., True
  for batch, x in batches(images, batch_size):
    means, noise_variances, analytic = moments(x, _fold(base_seed(seed), batch, tf.int64))
    means, noise_variances = np.asarray(means, np.float64), np.asarray(noise_variances)
    count, mean, sum_squares = _combine_moments(count, mean, sum_squares, means)
    noise = noise + noise_variances.sum(axis=0)
  variances = sum_squares / count - (count - 1) / count**2 * noise
  return dict(active_units=int(np.sum(variances > threshold)), variances=variances,
              analytic_mean=bool(analytic))


def generative_bounds(encoder, decoder, marginal, num_examples, seed,
                      num_samples=DEFAULT_NUM_SAMPLES, proposal=None,
                      batch_size=DEFAULT_BATCH_SIZE,
                      samples_per_chunk=DEFAULT_SAMPLES_PER_CHUNK):
  """Bounds E <= I_d(X; Z) <= G on the generative mutual information (Appendix C).

  I_d is the mutual information of the generative joint p_d(x, z) = m(z) d(x|z) (eq. 6).
  From `num_examples` draws z ~ m(z), x ~ d(x|z) (`decoder(z).sample(seed=...)`, which
  the PixelCNN answers with its fast sampler):

    E   = E [log e(z|x) - log m(z)]      <= I_d    (eq. 7, the encoder as the
                                                     variational posterior),
    G_K = E [log d(x|z) - L_K(x)]        >= I_d    (eq. 8 with log q(x) = L_K(x)),

  where L_K(x) is the importance-weighted estimate of log g(x), g(x) = E_m(z) d(x|z) the
  model's own marginal (see `importance_weighted_bound`). G_K stays an upper bound in
  expectation although L_K is not a normalised log-density: E[L_K(x)] <= log g(x) for
  every x (Jensen), so E[-L_K(x)] >= -log g(x) and G_K >= E[log d(x|z) - log g(x)] = I_d;
  G_K falls towards I_d as K grows, and G_1 - I_d = E_g KL(e(z|x) || p_d(z|x)), while
  I_d - E = E_g KL(p_d(z|x) || e(z|x)).

  Args:
    encoder: callable `encoder(x)` -> `tfd.Distribution` e(z|x).
    decoder: callable `decoder(z)` -> `tfd.Distribution` d(x|z), for z `[B, latent]`.
    marginal: `tfd.Distribution` m(z).
    num_examples: Python `int`, the number M of pairs (z, x) drawn.
    seed: shape-`[2]` integer `Tensor` or Python `int` (see the module docstring).
    num_samples: Python `int` or sequence of `int`s, the numbers K of draws for L_K.
    proposal: callable `proposal(x)` -> `tfd.Distribution` q(z|x) for L_K. Default:
      `encoder`.
    batch_size: Python `int`, pairs per batch (part of the seeding).
    samples_per_chunk: Python `int`, draws per example evaluated at once (memory only).

  Returns:
    `dict` with `float`s in nats: e (E) and e_stderr; g and g_stderr, `{K: float}` for
    each K (ascending); num_examples (M).
  """
  ks = _sample_counts(num_samples)
  generate = _generative_draws(encoder, decoder, marginal)
  proposal = encoder if proposal is None else proposal
  stream = _importance_stream(decoder, marginal, proposal, ks, samples_per_chunk)
  lower_terms, upper_terms = [], {k: [] for k in ks}
  for batch, start in enumerate(range(0, num_examples, batch_size)):
    batch_seed = _fold(base_seed(seed), batch, tf.int64)
    seed_generate, seed_bound = (_fold(batch_seed, i, tf.int32) for i in range(2))
    x, lower, log_decoder = generate(
        tf.constant(min(batch_size, num_examples - start)), seed_generate)
    lower_terms.append(lower.numpy())
    for k, bound in stream(x, seed_bound).items():
      upper_terms[k].append(log_decoder.numpy() - bound)
  e, e_stderr = _mean_and_stderr(np.concatenate(lower_terms))
  g = {k: _mean_and_stderr(np.concatenate(upper_terms[k])) for k in ks}
  return dict(e=e, e_stderr=e_stderr, g={k: v[0] for k, v in g.items()},
              g_stderr={k: v[1] for k, v in g.items()}, num_examples=num_examples)


def _importance_chunk(decoder, marginal, proposal):
  """Returns the compiled work of the likelihood bounds, `chunk(x, seed, indices)` -> `[B]`:

    logsumexp_{k in indices} [log d(x|z_k) + log m(z_k) - log q(z_k|x)],  z_k ~ q(z|x),

  draw k with seed `fold_in(seed, k)`: the proposal once on x `[B, ...]`, the marginal once
  on all `len(indices) * B` latents, and the decoder once per draw, on that draw's B
  latents (one call on all of them computes the same per example, but a PixelCNN decoder
  ran at half the rate per image on 1000 latents per call as on 100, on 2 CPU cores). A
  fresh `tf.function`: `experiments.bench` traces one at static shapes to count its FLOPs.
  """

  @tf.function(reduce_retracing=True, autograph=False)
  def segment_logsumexp(x, seed, indices):
    z, log_q = _draws(proposal(x), seed, indices)
    log_m = _flat_call(marginal.log_prob, z)
    log_d = tf.map_fn(lambda z_k: decoder(z_k).log_prob(x), z, fn_output_signature=log_q.dtype)
    return tf.reduce_logsumexp(log_d + log_m - log_q, axis=0)

  return segment_logsumexp


def _importance_stream(decoder, marginal, proposal, ks, samples_per_chunk):
  """Returns `stream(x, seed)` -> `{K: np.ndarray [B]}`, L_K(x) for every K in `ks`.

  The draws 0..max(ks)-1 are cut into segments that end at every K and at every multiple
  of `samples_per_chunk`; a running logsumexp over segments gives each L_K as its
  segment ends. The proposal runs once per segment (one `_importance_chunk` call each).
  """
  segment_logsumexp = _importance_chunk(decoder, marginal, proposal)
  ends = sorted(set(ks) | set(range(samples_per_chunk, ks[-1], samples_per_chunk)))

  def stream(x, seed):
    total, start, bounds = -np.inf, 0, {}
    for end in ends:
      indices = tf.range(start, end, dtype=tf.int32)
      total = np.logaddexp(total, segment_logsumexp(x, seed, indices).numpy())
      if end in ks:
        bounds[end] = total - np.log(end)
      start = end
    return bounds

  return stream


def _posterior_draws(encoder, marginal, num_samples):
  """Returns `draw(x, seed)` -> z `[B, S, ...]`, log e(z|x), log m(z) `[B, S]`, numpy."""

  @tf.function(reduce_retracing=True, autograph=False)
  def draw(x, seed):
    z, log_e = _draws(encoder(x), seed, tf.range(num_samples))
    log_m = _flat_call(marginal.log_prob, z)
    return _swap(z), _swap(log_e), _swap(log_m)

  return lambda x, seed: tuple(t.numpy() for t in draw(x, seed))


def _log_aggregate_posterior(encoder, images, latents, sources, encoders_per_chunk,
                             latents_per_chunk):
  """log sum_{n != s_j} e(z_j|x_n) for every latent z_j of `latents` `[J, ...]`, as
  `np.ndarray [J]`: the sum over every example but the one that z_j was drawn from,
  `sources[j]` (the caller adds that term as it computed it for I_e's numerator, so that
  each term of I_e is at most log N in floating point too, however peaked e(z|x) is)."""

  @tf.function(reduce_retracing=True, autograph=False)
  def chunk_logsumexp(x, offset, latent_chunks, source_chunks):
    posteriors = encoder(x)
    columns = offset + tf.range(tf.shape(x)[0])

    def one(chunk):
      z, source = chunk
      log_probs = posteriors.log_prob(z[:, tf.newaxis])
      own = tf.equal(source[:, tf.newaxis], columns[tf.newaxis, :])
      return tf.reduce_logsumexp(
          tf.where(own, tf.constant(-np.inf, log_probs.dtype), log_probs), axis=1)

    return tf.map_fn(one, (latent_chunks, source_chunks),
                     fn_output_signature=posteriors.dtype)

  num_latents = latents.shape[0]
  padding = -num_latents % latents_per_chunk  # Zeros, dropped after: any latent would do.
  chunks = tf.reshape(tf.pad(latents, [[0, padding]] + [[0, 0]] * (latents.ndim - 1)),
                      [-1, latents_per_chunk, *latents.shape[1:]])
  source_chunks = tf.reshape(tf.pad(tf.constant(sources, tf.int32), [[0, padding]],
                                    constant_values=-1), [-1, latents_per_chunk])
  total = np.full([num_latents], -np.inf)
  for batch, x in batches(images, encoders_per_chunk):
    offset = tf.constant(batch * encoders_per_chunk, tf.int32)
    total = np.logaddexp(total, chunk_logsumexp(x, offset, chunks, source_chunks).numpy()
                         .reshape(-1)[:num_latents])
  return total


def _posterior_means(encoder, num_samples):
  """Returns `moments(x, seed)`: E[z|x] `[B, latent]`, the variance of its estimate, and
  whether it is analytic (then the variance is 0)."""

  @tf.function(reduce_retracing=True, autograph=False)
  def moments(x, seed):
    posterior = encoder(x)
    try:
      means = _flatten_events(posterior.mean(), 1)
      return means, tf.zeros_like(means), True
    except NotImplementedError:
      z = _flatten_events(posterior.sample(num_samples, seed=_fold(seed, 0, tf.int32)), 2)
      _, variances = tf.nn.moments(z, axes=[0])
      # The variance of a mean of S draws: the sample variance (ddof 1) over S.
      return tf.reduce_mean(z, axis=0), variances / (num_samples - 1), False

  def call(x, seed):
    means, noise_variances, analytic = moments(x, seed)
    return means.numpy(), noise_variances.numpy(), bool(analytic)

  return call


def _generative_draws(encoder, decoder, marginal):
  """Returns `generate(num, seed)`: x ~ d(x|m-sample z), log e(z|x) - log m(z), log d(x|z)."""

  @tf.function(reduce_retracing=True, autograph=False)
  def generate(num, seed):
    seed_z, seed_x = (_fold(seed, i, tf.int32) for i in range(2))
    z = marginal.sample(num, seed=seed_z)
    likelihood = decoder(z)
    x = likelihood.sample(seed=seed_x)
    if not x.dtype.is_floating:  # E.g. a Bernoulli's int32: the encoder wants floats.
      x = tf.cast(x, z.dtype)
    return x, encoder(x).log_prob(z) - marginal.log_prob(z), likelihood.log_prob(x)

  return generate


def _draws(distribution, seed, indices):
  """Draws z `[S, B, ...]` and their log-densities `[S, B]`, draw k with seed
  `fold_in(seed, k)` for k in `indices` (as `seeds.step_seed`'s replica)."""
  return tf.map_fn(
      lambda k: distribution.experimental_sample_and_log_prob(seed=_fold(seed, k, tf.int32)),
      indices, fn_output_signature=(distribution.dtype, distribution.dtype))


def _flat_call(fn, z):
  """`fn` of z `[S, B, ...]` flattened to `[S * B, ...]`, its result reshaped to `[S, B]`."""
  flat = tf.reshape(z, tf.concat([[-1], tf.shape(z)[2:]], axis=0))
  return tf.reshape(fn(flat), tf.shape(z)[:2])


def _swap(t):
  """`[S, B, ...]` -> `[B, S, ...]`."""
  rank = len(t.shape)
  return tf.transpose(t, [1, 0, *range(2, rank)])


def _flatten_events(t, batch_ndims):
  """Flattens all but the first `batch_ndims` axes of `t`."""
  return tf.reshape(t, tf.concat([tf.shape(t)[:batch_ndims], [-1]], axis=0))


def _combine_moments(count, mean, sum_squares, values):
  """Adds the rows of `values` `[B, d]` to running (count, mean, sum of squared deviations)
  by the pairwise update of Chan, Golub and LeVeque (1979)."""
  batch_count, batch_mean = values.shape[0], values.mean(axis=0)
  batch_sum_squares = ((values - batch_mean)**2).sum(axis=0)
  total = count + batch_count
  delta = batch_mean - mean
  return (total, mean + delta * batch_count / total,
          sum_squares + batch_sum_squares + delta**2 * count * batch_count / total)


def batches(images, batch_size):
  """Yields (batch index, `Tensor` batch) over `images` in order (floats, as a decoder's
  `log_prob` takes them); shared by the estimators of this layer."""
  images = np.asarray(images)
  if not np.issubdtype(images.dtype, np.floating):
    images = images.astype(np.float32)
  for batch, start in enumerate(range(0, images.shape[0], batch_size)):
    yield batch, tf.constant(images[start:start + batch_size])


def _sample_counts(num_samples):
  """The numbers of samples K, sorted, as Python `int`s >= 1."""
  ks = sorted({int(k) for k in np.atleast_1d(num_samples)})
  if ks[0] < 1:
    raise ValueError(f'numbers of samples must be >= 1, got {num_samples}')
  return ks


def base_seed(seed):
  """A shape-`[2]` seed `Tensor`: Python `int` s -> `[s, 0]` (`seeds.step_seed`'s base);
  shared by the estimators of this layer."""
  if isinstance(seed, (int, np.integer)):
    return tf.constant([int(seed), 0], tf.int64)
  seed = tf.convert_to_tensor(seed)
  if seed.shape != [2] or not seed.dtype.is_integer:
    raise ValueError(f'seed must be an int or an integer Tensor of shape [2], got {seed}')
  return seed


def _fold(seed, data, dtype):
  """`stateless_fold_in(seed, data)` with `data` as `dtype` (int32 seeds come out for
  int32 data, as TFP's samplers require)."""
  return tf.random.experimental.stateless_fold_in(seed, tf.cast(data, dtype))


def _mean_and_stderr(values):
  """Mean of `values` and its standard error (sample std / sqrt(n); 0 for one value)."""
  values = np.asarray(values, np.float64)
  stderr = values.std(ddof=1) / np.sqrt(values.size) if values.size > 1 else 0.
  return float(values.mean()), float(stderr)
