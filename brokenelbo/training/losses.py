"""What a training step minimises: `loss(model, x, seed, step, epoch)`.

A loss is any callable taking the model, one replica's batch `x` (images `[B, 28, 28, 1]`,
or vectors `[B, D]`), the step's stateless seed `[2]`, the step counter (an `int64` scalar
`Tensor`) and the training progress in epochs (a `float32` scalar `Tensor`), and returning
`(loss, metrics)`: the scalar to minimise, and a `dict` of scalar `Tensor`s that the
trainer averages over the steps of a log interval and writes to TensorBoard as
`train/<name>` (beside `train/loss`). Bind one as `train.loss = @my_loss`; it is called
inside the compiled step, so it must be written in TensorFlow; it is traced as written,
without AutoGraph, so control flow that depends on a tensor's value uses `tf.cond` or
`tf.where` (or the loss is decorated with `tf.function`, which converts it). A loss with an
`objective` parameter is given `train.objective`.

`rate_distortion_loss` is the paper's: an objective on the batch means of the rate and the
distortion (Section 3: the beta-VAE's D + beta R, or the target rate's D + |sigma - R|),
with beta following `objectives.beta_schedule` (KL annealing).
"""

import gin
import tensorflow as tf

from brokenelbo.training import objectives


@gin.configurable(denylist=['objective'])
def rate_distortion_loss(model, x, seed, step, epoch, objective=objectives.beta_vae):
  """`objective(R, D, beta)` on the batch means of one z ~ e(z|x) per example.

  Args:
    model: a `vae.VAE` (anything with `rate_distortion(x, seed)`).
    x: `float32` `Tensor` `[B, 28, 28, 1]`, the replica's batch.
    seed: stateless seed `[2]` of this step and replica.
    step: scalar `Tensor`, the step (unused: beta depends on `epoch`).
    epoch: scalar `float32` `Tensor`, training progress in epochs.
    objective: `objective(rate, distortion, beta)` (`train.objective`: `@beta_vae`,
      `@target_rate`).

  Returns:
    (loss, {'rate', 'distortion', 'elbo', 'beta'}): scalars, nats per example.
  """
  del step
  beta = objectives.beta_schedule(epoch)
  rate, distortion = model.rate_distortion(x, seed)
  rate, distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
  metrics = dict(rate=rate, distortion=distortion, elbo=-(rate + distortion), beta=beta)
  return objective(rate, distortion, beta), metrics
