"""What a training step minimises: `loss(model, x, seed, step, epoch)`.

A loss is any callable taking the model, one replica's batch `x` (images `[B, 28, 28, 1]`,
or vectors `[B, D]`), the step's stateless seed `[2]`, the step counter (an `int64` scalar
`Tensor`) and the training progress in epochs (a `float32` scalar `Tensor`), and returning
`(loss, metrics)`: the scalar to minimise, and a `dict` of scalar `Tensor`s that the
trainer averages over the steps of a log interval and writes to TensorBoard as
`train/<name>` (beside `train/loss`). Bind one as `train.loss = @my_loss`; it is called
inside the compiled step, so it must be written in TensorFlow; it is traced as written,
without AutoGraph, so control flow that depends on a tensor's value uses `tf.cond` or
`tf.where` (or the loss is decorated with `tf.function`, which converts it). Its own
settings are its gin bindings (`rate_distortion_loss.objective = @target_rate`).

A loss may also have `metrics_at(epoch) -> {name: float}`: the values of its schedules at
a (fractional) epoch, e.g. beta, which every evaluation record of `metrics.jsonl` carries
(`metrics_at`); `train` calls it at epoch 0 first, so that a bad setting fails at once.

`rate_distortion_loss` is the paper's: an objective on the batch means of the rate and the
distortion (Section 3: the beta-VAE's D + beta R, or the target rate's D + |sigma - R|),
with beta following `objectives.beta_schedule` (KL annealing), one beta per member of a
batched model if given (`models.synthetic.SyntheticVAE`, "Members").
"""

import gin
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.training import objectives


def metrics_at(loss, epoch):
  """`loss.metrics_at(epoch)`, the values of the loss's schedules at `epoch` (Python
  `float`), as Python `float`s; `{}` for a loss that has none."""
  values = getattr(loss, 'metrics_at', lambda epoch: {})(epoch)
  return {name: float(value) for name, value in values.items()}


@gin.configurable
def rate_distortion_loss(model, x, seed, step, epoch, objective=objectives.beta_vae):
  """`objective(R, D, beta)` on the batch means of one z ~ e(z|x) per example.

  With one beta (`beta_schedule`), the objective is applied to the means over the batch
  (and the restarts of a `models.synthetic.SyntheticVAE`, whose rates are `[M, B]`: for
  `beta_vae` the mean over restarts of each restart's objective). With one beta per
  member (`beta_schedule.beta` a tuple of M), it is applied to each member's own batch
  means with its own beta, and averaged over the members, so that member m's gradient is
  1 / M of its gradient alone.

  Args:
    model: a `vae.VAE` (anything with `rate_distortion(x, seed)`), or a model of M members
      for a per-member beta.
    x: `float32` `Tensor` `[B, 28, 28, 1]`, the replica's batch (vectors: `[B, D]`, or
      stacked `[B, K, D]` for members of several data sets).
    seed: stateless seed `[2]` of this step and replica.
    step: scalar `Tensor`, the step (unused: beta depends on `epoch`).
    epoch: scalar `float32` `Tensor`, training progress in epochs.
    objective: `objective(rate, distortion, beta)` (`rate_distortion_loss.objective`:
      `@beta_vae`, `@target_rate`).

  Returns:
    (loss, {'rate', 'distortion', 'elbo', 'beta'}): scalars, nats per example (means over
    the members).

  Raises:
    UserError: for a per-member beta and a model of another number of members.
  """
  del step
  beta = objectives.beta_schedule(epoch)
  rate, distortion = model.rate_distortion(x, seed)
  if beta.shape.rank == 0:
    rate, distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
    metrics = dict(rate=rate, distortion=distortion, elbo=-(rate + distortion), beta=beta)
    return objective(rate, distortion, beta), metrics
  if rate.shape.rank != 2 or rate.shape[0] != beta.shape[0]:
    raise errors.UserError(f'beta_schedule has {beta.shape[0]} values, one per member: the '
                           f'model must have as many members, not rates {rate.shape}')
  rate, distortion = tf.reduce_mean(rate, axis=-1), tf.reduce_mean(distortion, axis=-1)
  loss = tf.reduce_mean(objective(rate, distortion, beta))
  rate, distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
  metrics = dict(rate=rate, distortion=distortion, elbo=-(rate + distortion),
                 beta=tf.reduce_mean(beta))
  return loss, metrics


def _rate_distortion_metrics_at(epoch):
  """beta at `epoch` (`objectives.beta_schedule`), the mean over members of a per-member
  beta; raises `UserError` for beta < 0."""
  return dict(beta=tf.reduce_mean(objectives.beta_schedule(epoch)))


rate_distortion_loss.metrics_at = _rate_distortion_metrics_at
