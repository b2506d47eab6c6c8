"""Adam with per-variable normalised gradients and the paper's learning-rate schedule.

Every variable's gradient is divided by its own L2 norm before the Adam update (block
normalised gradients, Yu et al. 2017):

  g_v <- g_v / (||g_v||_2 + epsilon)

The learning rate is constant for the first half of training, then decays linearly to 0
(the paper trains 100 + 100 epochs at 3e-4).

#### References

[1] Yu, Zhang, Lin, Carbonell. Block-Normalized Gradient Method: An Empirical Study for
    Training Deep Neural Network. arXiv:1707.04822, 2017.
"""

import gin
import tensorflow as tf
import tf_keras

from brokenelbo import domains


def normalize_gradients(gradients, epsilon=1e-8):
  """Divides each gradient by its own L2 norm; `None` entries pass through."""
  return [None if g is None else g / (tf.norm(g) + epsilon) for g in gradients]


class ConstantThenLinearDecay(tf_keras.optimizers.schedules.LearningRateSchedule):
  """`learning_rate` until `decay_start` steps, then linear decay to 0 at `total_steps`."""

  def __init__(self, learning_rate, total_steps, decay_start):
    super().__init__()
    self.learning_rate = learning_rate
    self.total_steps = total_steps
    self.decay_start = decay_start

  def __call__(self, step):
    step = tf.cast(step, tf.float32)
    span = max(self.total_steps - self.decay_start, 1)
    fraction = tf.clip_by_value((step - self.decay_start) / span, 0., 1.)
    return self.learning_rate * (1. - fraction)

  def get_config(self):
    return dict(learning_rate=self.learning_rate, total_steps=self.total_steps,
                decay_start=self.decay_start)


@gin.configurable
@domains.checked(learning_rate=domains.POSITIVE, decay_start_fraction=domains.PROBABILITY,
                 beta_1=domains.real(0, 1, high_open=True),
                 beta_2=domains.real(0, 1, high_open=True), epsilon=domains.POSITIVE)
def normalized_adam(total_steps, learning_rate=3e-4, decay_start_fraction=0.5,
                    beta_1=0.9, beta_2=0.999, epsilon=1e-8):
  """Adam under the constant-then-linear-decay schedule (apply `normalize_gradients`).

  Args:
    total_steps: Python `int`, the number of training steps.
    learning_rate: Python `float`, the initial learning rate (paper: 3e-4).
    decay_start_fraction: Python `float`, where the linear decay starts (paper: 0.5).
    beta_1, beta_2, epsilon: Adam's parameters (Keras defaults). A loss that averages over
      M independent models (the members of `models.synthetic.SyntheticVAE`) gives each
      Adam with epsilon M times this one.

  Returns:
    A `tf_keras.optimizers.Adam`.
  """
  schedule = ConstantThenLinearDecay(learning_rate, total_steps,
                                     int(decay_start_fraction * total_steps))
  return tf_keras.optimizers.Adam(learning_rate=schedule, beta_1=beta_1, beta_2=beta_2,
                                  epsilon=epsilon)
