"""Training objectives on batch-mean rate R and distortion D (Section 3 of the paper).

- `beta_vae`: D + beta R. beta = 1 is the negative ELBO; beta < 1 favours a higher rate,
  stopping a powerful decoder from ignoring z.
- `target_rate`: D + |sigma - R|, which drives the rate to a chosen sigma.

Both are called as `objective(rate, distortion, beta)` with scalar batch means (or one
per member of a batched model, `[M]`, element-wise). The beta schedule (`beta_schedule`)
gives optional KL annealing, with one beta per member if given.
"""

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo import errors

_BETA = domains.either(domains.NON_NEGATIVE, domains.tuple_of(domains.NON_NEGATIVE))


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
@domains.checked(beta=_BETA, anneal_epochs=domains.NON_NEGATIVE, start_beta=_BETA)
def beta_schedule(epoch, beta=1., anneal_epochs=0., start_beta=0.):
  """beta at (fractional) `epoch`: linear from `start_beta` to `beta` over `anneal_epochs`.

  Args:
    epoch: scalar `Tensor`, training progress in epochs.
    beta: Python `float` >= 0, the final beta; or a tuple of them, one per member of a
      batched model (`models.synthetic.SyntheticVAE`, "Members"), in member order.
    anneal_epochs: Python `float`; 0 disables annealing (beta constant).
    start_beta: Python `float` >= 0, beta at epoch 0 when annealing; or one per member.

  Returns:
    `float32` `Tensor`, scalar, or `[M]` when `beta` or (annealing) `start_beta` is a
    tuple of M; each member's value is the one its scalar setting gives.

  Raises:
    UserError: for a value out of its domain, or tuples of two lengths.
  """
  if isinstance(beta, (tuple, list)) and isinstance(start_beta, (tuple, list)) and (
      len(beta) != len(start_beta)):
    raise errors.UserError(f'beta_schedule.start_beta = {tuple(start_beta)!r}: must have one '
                           f'value per member, as beta_schedule.beta = {tuple(beta)!r}')
  if anneal_epochs <= 0:
    return tf.constant(beta, tf.float32)
  fraction = tf.minimum(tf.cast(epoch, tf.float32) / anneal_epochs, 1.)
  if isinstance(beta, (tuple, list)) or isinstance(start_beta, (tuple, list)):
    # As the scalar expression below: the difference in float64, then float32 arithmetic.
    slope = np.asarray(beta, np.float64) - np.asarray(start_beta, np.float64)
    return (tf.constant(np.broadcast_to(start_beta, slope.shape), tf.float32)
            + tf.constant(slope, tf.float32) * fraction)
  return start_beta + (beta - start_beta) * fraction
