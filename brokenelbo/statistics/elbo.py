"""Whole-split evaluation: rate, distortion and ELBO in nats per example (Section 2).

  R = E[log e(z|x) - log m(z)],  D = -E[log d(x|z)],  ELBO = -(R + D),

averaged over every example of a split, with `num_samples` draws z ~ e(z|x) per example from
fixed stateless seeds, so that the same run and seed give the same numbers.

A model whose `rate_distortion` returns `[M, B]` rather than `[B]` holds M independent
models (restarts, or members of several settings and data sets, trained together,
`models.synthetic`; their `images` stacked `[N, K, D]` for members of K data sets): each is
averaged over the examples on its own, `rate`, `distortion` and `elbo` are the means over
the M models, and `rate_<m>`, `distortion_<m>`, `elbo_<m>` each model's own value.
"""

import numpy as np
import tensorflow as tf

from brokenelbo.data import pipeline
from brokenelbo.utils import seeds


def make_evaluate(vae, batch_size, seed, num_samples=1):
  """Returns `evaluate(images)`: rate, distortion and ELBO in nats per example over all of
  `images`, averaged over `num_samples` draws z ~ e(z|x) per example from fixed seeds (the
  first draw is the same for every `num_samples`); compiled once. For a model of M
  restarts (`[M, B]` rates), also each restart's values (see the module docstring)."""

  # Traced as written (a Python loop over the draws), without AutoGraph's conversion.
  @tf.function(reduce_retracing=True, autograph=False)
  def sums(x, batch):
    total_rate = total_distortion = tf.constant(0.)
    for k in range(num_samples):
      rate, distortion = vae.rate_distortion(x, seeds.step_seed(seed, batch, replica=k))
      total_rate += tf.reduce_sum(rate, axis=-1)
      total_distortion += tf.reduce_sum(distortion, axis=-1)
    return total_rate / num_samples, total_distortion / num_samples

  def evaluate(images):
    dataset = pipeline.make_dataset(images, batch_size)
    total_rate = total_distortion = 0.
    for batch, x in enumerate(dataset):
      r, d = sums(x, tf.constant(batch, tf.int64))
      total_rate += r.numpy().astype(np.float64)
      total_distortion += d.numpy().astype(np.float64)
    n = images.shape[0]
    rate, distortion = total_rate / n, total_distortion / n
    elbo = -(rate + distortion)
    result = dict(rate=float(np.mean(rate)), distortion=float(np.mean(distortion)),
                  elbo=float(np.mean(elbo)))
    for m in range(np.size(rate) if np.ndim(rate) else 0):
      result.update({f'rate_{m}': float(rate[m]), f'distortion_{m}': float(distortion[m]),
                     f'elbo_{m}': float(elbo[m])})
    return result

  return evaluate
