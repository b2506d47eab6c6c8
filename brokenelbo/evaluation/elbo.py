"""Whole-split evaluation: rate, distortion and ELBO in nats per example (Section 2).

  R = E[log e(z|x) - log m(z)],  D = -E[log d(x|z)],  ELBO = -(R + D),

averaged over every example of a split, with `num_samples` draws z ~ e(z|x) per example from
fixed stateless seeds, so that the same run and seed give the same numbers.
"""

import tensorflow as tf

from brokenelbo.data import pipeline
from brokenelbo.utils import seeds


def make_evaluate(vae, batch_size, seed, num_samples=1):
  """Returns `evaluate(images)`: rate, distortion and ELBO in nats per example over all of
  `images`, averaged over `num_samples` draws z ~ e(z|x) per example from fixed seeds (the
  first draw is the same for every `num_samples`); compiled once."""

  @tf.function(reduce_retracing=True)
  def sums(x, batch):
    total_rate = total_distortion = tf.constant(0.)
    for k in range(num_samples):
      rate, distortion = vae.rate_distortion(x, seeds.step_seed(seed, batch, replica=k))
      total_rate += tf.reduce_sum(rate)
      total_distortion += tf.reduce_sum(distortion)
    return total_rate / num_samples, total_distortion / num_samples

  def evaluate(images):
    dataset = pipeline.make_dataset(images, batch_size)
    total_rate = total_distortion = 0.
    for batch, x in enumerate(dataset):
      r, d = sums(x, tf.constant(batch, tf.int64))
      total_rate += float(r)
      total_distortion += float(d)
    n = images.shape[0]
    rate, distortion = total_rate / n, total_distortion / n
    return dict(rate=rate, distortion=distortion, elbo=-(rate + distortion))

  return evaluate
