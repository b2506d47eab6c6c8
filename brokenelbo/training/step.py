"""The compiled training step: `Trainer` owns the model, its optimizer, its step counter and
`train_steps`, many steps in one compiled call. It knows nothing of logging or files.

One step, on a global batch split over the R replicas of a `tf.distribute` strategy:

  replica r:  L_r = loss(model, x_r, seed(seed, step, r), step, step / steps_per_epoch)
  gradient:   g_v = sum_r d(L_r / R)/dv                  (a cross-replica sum)
  update:     v <- optimizer(g_v / ||g_v||)  if mean_r L_r and ||g|| are finite,
              else nothing (the step counts as bad)

Every random draw uses a stateless seed folded from (seed, step, replica), so a run is fully
determined by its step counter. The per-variable normalisation g_v / (||g_v|| + eps) is Yu et
al.'s (2017; `optimizers.normalize_gradients`; off with `normalize=False`); the optimizer is
`optimizer(total_steps=...)`, Adam under the paper's schedule by default (Appendix F).
`train_steps` loops in TensorFlow (no Python work per step), reads the stop request before
every step (`distributed.stop_agreed`), and ends after `max_consecutive_bad_steps` bad steps
in a row. Mixed precision: networks in 16 bits, variables, densities and losses in float32,
the loss scaled by `loss_scale` before differentiation.

#### References

[1] Yu, Zhang, Lin, Carbonell. Block-Normalized Gradient Method: An Empirical Study for
    Training Deep Neural Network. arXiv:1707.04822, 2017.
"""

import contextlib

import tensorflow as tf
import tf_keras

from brokenelbo.data.mnist import IMAGE_SHAPE  # pylint: disable=g-importing-member
from brokenelbo.training import distributed
from brokenelbo.training import optimizers
from brokenelbo.utils import seeds


@contextlib.contextmanager
def precision_policy(name):
  """Within the block, Keras layers are built with the mixed-precision policy `name`
  (`None`: no change); the previous global policy is restored after."""
  if name is None:
    yield
    return
  previous = tf_keras.mixed_precision.global_policy()
  tf_keras.mixed_precision.set_global_policy(name)
  try:
    yield
  finally:
    tf_keras.mixed_precision.set_global_policy(previous)


class Trainer:
  """The model, its optimizer and step counter, and the compiled multi-step training loop.

  Args:
    model: callable returning the model (a `vae.VAE`), built under `strategy.scope()`.
    loss: `loss(model, x, seed, step, epoch) -> (loss, metrics)` (see `losses`), traced
      as written, without AutoGraph: control flow that depends on a tensor's value is
      written with `tf.cond`/`tf.where`, or the loss is itself a `tf.function`, which
      converts it.
    strategy: a `tf.distribute.Strategy`, of one process or of a cluster.
    total_steps: Python `int`, the length of the learning-rate schedule.
    steps_per_epoch: Python `int`, to turn steps into epochs for the loss.
    seed: Python `int`, folded with (step, replica) into each step's stateless seed.
    optimizer: `optimizer(total_steps=...)` returning a `tf_keras` optimizer
      (`optimizers.normalized_adam`).
    jit_compile: Python `bool`, compile the per-replica step with XLA.
    max_consecutive_bad_steps: Python `int`, `train_steps` stops early after this many
      non-finite steps in a row.
    mixed_precision: `None` (float32) or a Keras mixed-precision policy name
      ('mixed_float16' or 'mixed_bfloat16', for GPUs and TPUs): the networks compute in
      16 bits, variables, densities and losses stay float32.
    loss_scale: Python `float`, the loss is multiplied by it before differentiation and
      the gradients divided by it after (float16 gradients would underflow otherwise). A
      step that overflows is skipped like any non-finite step.
    example_shape: Python `tuple`, the shape of one training example (MNIST's
      `[28, 28, 1]` by default; `[D]` for vector data).
    normalize: Python `bool`, normalise each variable's gradient by its L2 norm before
      the optimizer (the paper's Appendix F); `False` gives plain Adam, whose update is
      element-wise, so that independent models stacked in one variable (restarts trained
      as one batched computation) stay independent.

  Attributes:
    metric_names: Python `tuple` of `str`, the names of the loss's metrics, in the order of
      the means that `train_steps` returns after the loss itself.
    stop_requested: boolean `tf.Variable`, set (by `preemption.StopOnSigterm`) to end
      `train_steps` before its next step; not mirrored, not checkpointed.
  """

  def __init__(self, model, loss, strategy, total_steps, steps_per_epoch, seed,
               optimizer=optimizers.normalized_adam, jit_compile=False,
               max_consecutive_bad_steps=10, mixed_precision=None, loss_scale=1.,
               example_shape=IMAGE_SHAPE, normalize=True):
    self.strategy, self.loss, self.seed = strategy, loss, seed
    self.steps_per_epoch = steps_per_epoch
    self.normalize, self.loss_scale = normalize, loss_scale
    self.max_consecutive_bad_steps = max_consecutive_bad_steps
    self.stop_requested = tf.Variable(False, trainable=False, name='stop_requested')
    with strategy.scope():
      with precision_policy(mixed_precision):  # Layers take the policy when built.
        self.vae = model()
      self.optimizer = optimizer(total_steps=total_steps)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
      # Consecutive non-finite steps so far, across calls of `train_steps`.
      self.bad_run = tf.Variable(0, trainable=False, name='bad_run')
      self.metric_names = self._trace_metric_names(example_shape)
      self.variables = self.vae.trainable_variables
      self.optimizer.build(self.variables)
    # Every function here is written in TensorFlow's own control flow and traced without
    # AutoGraph, so that nothing is converted from source, which would cost seconds at
    # every process's start (the model and the loss are traced as they are written).
    self._replica_step = tf.function(self.replica_step_fn, jit_compile=jit_compile,
                                     autograph=False)
    self.train_steps = tf.function(self._train_steps_fn, autograph=False)

  def _trace_metric_names(self, example_shape):
    """The names of the loss's metrics. The loss is traced once, not run (a loss may count
    its calls): this builds every variable it uses."""
    def trace(x):
      return self.loss(self.vae, x, seeds.step_seed(self.seed, 0), tf.constant(0, tf.int64),
                       tf.constant(0.))

    _, metrics = tf.function(trace, autograph=False).get_concrete_function(
        tf.TensorSpec([1, *example_shape], tf.float32)).structured_outputs
    return tuple(metrics)

  @property
  def checkpoint_objects(self):
    """`dict` of what a checkpoint holds: the model, the optimizer, the step counter."""
    return dict(model=self.vae, optimizer=self.optimizer, step=self.step)

  def distribute(self, dataset):
    """An iterator over `dataset`'s global batches split across the replicas
    (`distributed.distribute_dataset`)."""
    return distributed.distribute_dataset(self.strategy, dataset)

  def replica_step_fn(self, x):
    """Loss, metrics and gradients of one replica's share of the global batch.

    The loss is divided by the number of replicas, so that the sum of the replicas'
    gradients is the gradient of the global batch mean. No cross-replica communication
    happens here, so this function can be compiled with XLA on its own.
    """
    context = tf.distribute.get_replica_context()
    epoch = tf.cast(self.step, tf.float32) / self.steps_per_epoch
    seed = seeds.step_seed(self.seed, self.step, context.replica_id_in_sync_group)
    with tf.GradientTape() as tape:
      loss, metrics = self.loss(self.vae, x, seed, self.step.value(), epoch)
      replica_loss = loss * self.loss_scale / self.strategy.num_replicas_in_sync
    gradients = tape.gradient(replica_loss, self.variables,
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
    if self.loss_scale != 1.:
      gradients = [g / self.loss_scale for g in gradients]
    stats = tf.stack([loss] + [tf.cast(metrics[name], tf.float32)
                               for name in self.metric_names])
    return stats, gradients

  def _step(self, x):
    """One training step across the replicas (cross-replica context).

    Gradients are summed over replicas, then normalised per variable (if `normalize`) and
    applied by the optimizer, unless the loss or the gradient is not finite, in which case
    nothing changes.
    """
    stats, gradients = self.strategy.run(self._replica_step, args=(x,))
    reduce = self.strategy.reduce
    # One gradient at a time: `Strategy.reduce` takes one value, not a list (under
    # `MultiWorkerMirroredStrategy` a list would be stacked into one tensor).
    gradients = [reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in gradients]
    stats = reduce(tf.distribute.ReduceOp.MEAN, stats, axis=None)
    grad_norm = tf.linalg.global_norm(gradients)
    finite = tf.math.is_finite(stats[0]) & tf.math.is_finite(grad_norm)

    def apply():
      update = optimizers.normalize_gradients(gradients) if self.normalize else gradients
      self.optimizer.apply_gradients(zip(update, self.variables),
                                     skip_gradients_aggregation=True)
      return tf.constant(0)

    tf.cond(finite, apply, lambda: tf.constant(0))
    return stats, grad_norm, finite

  def _train_steps_fn(self, iterator, num_steps):
    """Runs up to `num_steps` steps; returns the means of (loss, *metrics) over the good
    steps, the number of good steps, the current run of consecutive bad steps (which may
    have begun in an earlier call) and the last gradient norm.

    Fewer steps run if `max_consecutive_bad_steps` bad steps come in a row, or if
    `stop_requested` is set in any process (checked before every step).
    """
    def step(totals, good, grad_norm):
      stats, grad_norm, finite = self._step(next(iterator))
      self.step.assign_add(1)
      bad_run = self.bad_run.assign(tf.where(finite, 0, self.bad_run + 1))
      return (totals + tf.where(finite, stats, 0.), good + tf.cast(finite, tf.float32),
              grad_norm, bad_run >= self.max_consecutive_bad_steps)

    def body(i, totals, good, grad_norm, _):
      # The stop request is read before the step, as a collective operation of every
      # worker; a stop, or too many bad steps in a row, ends the loop.
      totals, good, grad_norm, done = tf.cond(
          distributed.stop_agreed(self.strategy, self.stop_requested),
          lambda: (totals, good, grad_norm, tf.constant(True)),
          lambda: step(totals, good, grad_norm))
      return i + 1, totals, good, grad_norm, done

    _, totals, good, grad_norm, _ = tf.while_loop(
        lambda i, *state: (i < num_steps) & tf.logical_not(state[-1]), body,
        (tf.zeros_like(num_steps), tf.zeros([1 + len(self.metric_names)]), tf.constant(0.),
         tf.constant(0.), tf.constant(False)))
    return totals / tf.maximum(good, 1.), good, self.bad_run.value(), grad_norm
