"""Lagging inference networks (He et al. 2019) as Yacoby et al. (2020) run them: a loss.

He et al. train the inference network "aggressively", alone, before each update of the
generative model. Yacoby et al. (2020, Appendix E, "Hyper-parameter Search") cut the
training epochs into R equal segments; in each, the inference network is first trained
alone, then both networks together. The objective is the negative ELBO (rate + distortion,
`models.synthetic.SyntheticVAE.rate_distortion`), with the gradient of the generative
parameters theta stopped in the first part of a segment:

  segment length  T = epochs / R,
  inference-only  while  (epoch mod T) < inference_fraction * T,
  loss            = mean over restarts and examples of  R(x) + D(x),
                    with theta held fixed in the inference-only part.

Averaged over the M members and the examples, the loss gives member m 1 / M of the
gradient of its own mean.

`inference_fraction = 0.5` is our choice. R may differ per member of a batched model
(`models.synthetic.SyntheticVAE`, "Members"): each member then follows its own segments,
with theta held fixed per member. The motivation, the paper's grids of R and how Adam
treats the stopped gradient: docs/methods.md.

#### References

[1] He, Spokoyny, Neubig, Berg-Kirkpatrick. Lagging Inference Networks and Posterior
    Collapse in Variational Autoencoders. ICLR 2019.
[2] Yacoby, Pan, Doshi-Velez. Characterizing and Avoiding Problematic Global Optima of
    Variational Autoencoders. AABI 2020 (arXiv:2003.07756), Appendix E.
"""

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo import errors


@gin.configurable
@domains.checked(epochs=domains.POSITIVE,
                 segments=domains.either(domains.POSITIVE_INT,
                                         domains.tuple_of(domains.POSITIVE_INT)),
                 inference_fraction=domains.PROBABILITY)
class LaggingInference:
  """The negative ELBO, with the generative model frozen in the first part of each segment.

  A loss for `train.loss = @LaggingInference()`: the arguments are checked when `train`
  builds it, then `loss(model, x, seed, step, epoch)` runs inside the compiled step.

  Args:
    epochs: Python `float` > 0, the run's length in epochs (bind it to `train.epochs`).
    segments: Python `int` >= 1, R, the number of equal segments; or a tuple of them, one
      per member of the model, in member order.
    inference_fraction: Python `float` in [0, 1], the part of each segment in which the
      inference network is trained alone (not stated in the paper; 0.5).

  Raises:
    UserError: for arguments out of range.
  """

  def __init__(self, epochs=gin.REQUIRED, segments=gin.REQUIRED, inference_fraction=0.5):
    self.members = len(segments) if isinstance(segments, (tuple, list)) else None
    # Per member, the same float64 arithmetic as for one R.
    self.segment_epochs = float(epochs) / (
        segments if self.members is None else np.asarray(segments, np.float64))
    self.inference_fraction = inference_fraction

  def inference_only(self, epoch):
    """Whether `epoch` (scalar `Tensor`) is in the inference-only part of its segment:
    `bool`, scalar, or `[M]` for per-member segments."""
    position = tf.math.floormod(tf.cast(epoch, tf.float64), self.segment_epochs)
    return position < self.inference_fraction * self.segment_epochs

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing for AutoGraph to do.
  def __call__(self, model, x, seed, step, epoch):
    """The loss of one step.

    Args:
      model: a `models.synthetic.SyntheticVAE` (anything whose `rate_distortion(x, seed,
        stop_theta)` stops the generative model's gradient when `stop_theta`, a `bool`
        per member `[M]` for per-member segments).
      x: `float32` `Tensor` `[B, D]`, the batch (stacked `[B, K, D]` for members of
        several data sets).
      seed: stateless seed `[2]` of this step.
      step: scalar `Tensor` (unused: the schedule follows `epoch`).
      epoch: scalar `float32` `Tensor`, training progress in epochs.

    Returns:
      (loss, {'rate', 'distortion', 'elbo', 'beta', 'inference_only'}): the loss and the
      rate, distortion and ELBO averaged over restarts and examples, nats per example;
      beta = 1, the rate's weight in the loss; `inference_only` is 1 in the
      inference-only part, else 0 (per member: the fraction of members in it).

    Raises:
      UserError: for per-member segments and a model of another number of members.
    """
    del step
    if self.members is not None and self.members != model.restarts:
      raise errors.UserError(f'LaggingInference.segments has {self.members} values, one per '
                             f'member: the model has {model.restarts} (SyntheticVAE.restarts)')
    alone = self.inference_only(epoch)
    rate, distortion = model.rate_distortion(x, seed, stop_theta=alone)
    rate, distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
    metrics = dict(rate=rate, distortion=distortion, elbo=-(rate + distortion),
                   beta=tf.constant(1.),
                   inference_only=tf.reduce_mean(tf.cast(alone, tf.float32)))
    return rate + distortion, metrics

  def metrics_at(self, epoch):
    """beta = 1 at every epoch: the loss is the negative ELBO (see `losses`)."""
    del epoch
    return dict(beta=1.)
