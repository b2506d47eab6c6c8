"""Training objectives on batch-mean rate R and distortion D (Section 3 of the paper).

- `beta_vae`: D + beta R. beta = 1 is the negative ELBO; beta < 1 favours a higher rate,
  stopping a powerful decoder from ignoring z.
- `target_rate`: D + |sigma - R|, which drives the rate to a chosen sigma.

Both are called as `objective(rate, distortion, beta)` with scalar batch means. The beta
schedule (`beta_schedule`) gives optional KL annealing.
"""

import gin
import tensorflow as tf

from brokenelbo import domains


@gin.configurable
def beta_vae(rate, distortion, beta):
  """The beta-VAE objective D + beta R (beta = 1: the negative ELBO)."""
  return distortion + beta * rate


@gin.configurable
@domains.checked(target=domains.NON_NEGATIVE)
def target_rate(rate, distortion, beta, target=gin.REQUIRED):
  """The target-rate objective D + |sigma - R|, with sigma = `target` nats; ignores beta."""
  del beta
  return distortion + tf.abs(target - rate)


@gin.configurable
@domains.checked(beta=domains.NON_NEGATIVE, anneal_epochs=domains.NON_NEGATIVE,
                 start_beta=domains.NON_NEGATIVE)
def beta_schedule(epoch, beta=1., anneal_epochs=0., start_beta=0.):
  """beta at (fractional) `epoch`: linear from `start_beta` to `beta` over `anneal_epochs`.

  Args:
    epoch: scalar `Tensor`, training progress in epochs.
    beta: Python `float` >= 0, the final beta.
    anneal_epochs: Python `float`; 0 disables annealing (beta constant).
    start_beta: Python `float` >= 0, beta at epoch 0 when annealing.
  """
  if anneal_epochs <= 0:
    return tf.constant(beta, tf.float32)
  fraction = tf.minimum(tf.cast(epoch, tf.float32) / anneal_epochs, 1.)
  return start_beta + (beta - start_beta) * fraction
