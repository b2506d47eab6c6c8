"""The information suite of a VAE run: what `brokenelbo.evaluate` measures beyond R and D.

For one split of a restored run it computes, with the generic estimators of `information`:

- NLL_K = -mean L_K, the importance-weighted bound on -log p(x) for each K (Burda et al.
  2016; K = 1 is the one-sample -ELBO), on `likelihood_examples` examples;
- I_e, the mutual information of the encoder under the data, the rate R from the same
  draws and the marginal gap KL(e(z) || m(z)) = R - I_e (Hoffman & Johnson 2016), on
  `information_examples` examples; I_e <= log N for N examples, so log N is recorded
  beside it;
- the number of active units (Var_x E[z_i|x] > 0.01; Burda et al. 2016), on the same
  examples;
- the generative bounds E <= I_d(X;Z) <= G of Appendix C, from `generative_examples` pairs
  z ~ m(z), x ~ d(x|z), with G's log q(x) the importance-weighted L_K of the model's own
  marginal at the largest K.

The examples are evenly spaced through the split (`data.subsets.spread`), not its first
ones: MNIST's test split is sorted by class. Their spacing is recorded
(`likelihood_stride`, `information_stride`); records without it came from the first
examples, and `experiments.sweep` measures such a suite again.

The defaults (K = 1, 10, 100 on 500 examples; I_e on 500; 100 generated pairs) keep an
evaluation to minutes on 2 CPU cores; bind larger counts
(`information_suite.likelihood_examples = 10000`, `information_suite.num_samples = (1, 10,
100, 1000, 5000)`) where there is a GPU. Every count used is recorded with the numbers.
"""

import gin
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.data import subsets
from brokenelbo.statistics import information


def _key(name, k):
  return f'{name}_k{k}'


def _stream(seed, index):
  """A base seed `[seed, index]`: `index` 0 is the likelihood bound's (and the ELBO's)."""
  return tf.constant([seed, index], tf.int32)


@gin.configurable(denylist=['model', 'images', 'seed'])
@domains.checked(num_samples=domains.tuple_of(domains.POSITIVE_INT),
                 likelihood_examples=domains.POSITIVE_INT,
                 information_examples=domains.POSITIVE_INT,
                 generative_examples=domains.POSITIVE_INT,
                 active_unit_threshold=domains.NON_NEGATIVE, batch_size=domains.POSITIVE_INT)
def information_suite(model, images, seed, num_samples=(1, 10, 100), likelihood_examples=500,
                      information_examples=500, generative_examples=100,
                      active_unit_threshold=0.01, batch_size=100):
  """The information measures of `model` on `images`, as one flat `dict` of numbers.

  Args:
    model: a `vae.VAE` (its `encoder`, `decoder` and `marginal_distribution()`).
    images: array `[N, 28, 28, 1]` of the split (examples evenly spaced through it
      are used).
    seed: Python `int`. The likelihood bound draws as `elbo.make_evaluate(..., seed)`
      does, so with the same batch size NLL_1 is its -ELBO on the same examples; the other
      measures draw from streams of their own.
    num_samples: Python `tuple` of `int`, the K of NLL_K; the largest also serves G.
    likelihood_examples: Python `int`, examples for NLL_K.
    information_examples: Python `int`, examples N for I_e, the marginal gap and the
      active units (the aggregate posterior costs N^2 encoder densities).
    generative_examples: Python `int`, pairs (z, x) drawn from the model for E and G.
    active_unit_threshold: Python `float`, Burda et al.'s 0.01.
    batch_size: Python `int`, examples per batch.

  Returns:
    `dict`: nll_k<K> and nll_k<K>_stderr for each K; mutual_information, rate_information
    (R from the same draws), marginal_kl, each with `_stderr`; log_num_examples (the cap of
    I_e); active_units; generative_e, generative_g_k<K> and their `_stderr`; the counts
    (likelihood_examples, information_examples, generative_examples); and the spacing of
    the examples taken (likelihood_stride, information_stride: every such example of
    `images`, from the first).
  """
  encoder, decoder = model.encoder, model.decoder
  marginal = model.marginal_distribution()
  ks = sorted(set(int(k) for k in num_samples))
  likely = subsets.spread(images, likelihood_examples)
  result = _likelihood_bounds(encoder, decoder, marginal, likely, seed, ks, batch_size)
  informative = subsets.spread(images, information_examples)
  result.update(_encoder_information(encoder, marginal, informative, seed,
                                     active_unit_threshold, batch_size))
  result.update(_generative_bounds(encoder, decoder, marginal, generative_examples, seed,
                                   ks[-1], batch_size))
  result.update(likelihood_examples=int(likely.shape[0]),
                information_examples=int(informative.shape[0]),
                generative_examples=int(generative_examples),
                likelihood_stride=subsets.stride(images.shape[0], likelihood_examples),
                information_stride=subsets.stride(images.shape[0], information_examples))
  return result


def _likelihood_bounds(encoder, decoder, marginal, images, seed, ks, batch_size):
  """nll_k<K> and its `_stderr` for each K of `ks`: one importance-weighted bound."""
  bound = information.importance_weighted_bound(
      encoder, decoder, marginal, images, seed, num_samples=ks,
      batch_size=batch_size)
  result = {}
  for k in ks:
    result[_key('nll', k)] = bound['nll'][k]
    result[_key('nll', k) + '_stderr'] = bound['nll_stderr'][k]
  return result


def _encoder_information(encoder, marginal, images, seed, active_unit_threshold,
                         batch_size):
  """I_e, the marginal gap and R from the same draws (with `_stderr`), log N, and the
  active units, on the same `images`."""
  mutual = information.mutual_information(encoder, marginal, images, _stream(seed, 1),
                                          batch_size=batch_size)
  result = {}
  for name in ('mutual_information', 'marginal_kl'):
    result[name], result[f'{name}_stderr'] = mutual[name], mutual[f'{name}_stderr']
  result['rate_information'] = mutual['rate']
  result['rate_information_stderr'] = mutual['rate_stderr']
  result['log_num_examples'] = mutual['log_num_examples']
  result['active_units'] = information.active_units(
      encoder, images, threshold=active_unit_threshold, batch_size=batch_size,
      seed=_stream(seed, 2))['active_units']
  return result


def _generative_bounds(encoder, decoder, marginal, num_examples, seed, k, batch_size):
  """E and G_K with K = `k` (with `_stderr`) from `num_examples` pairs drawn from the
  model."""
  generative = information.generative_bounds(
      encoder, decoder, marginal, num_examples, _stream(seed, 3),
      num_samples=[k], batch_size=batch_size)
  return {'generative_e': generative['e'], 'generative_e_stderr': generative['e_stderr'],
          _key('generative_g', k): generative['g'][k],
          _key('generative_g', k) + '_stderr': generative['g_stderr'][k]}
