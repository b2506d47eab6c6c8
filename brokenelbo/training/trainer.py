"""The training loop: the root configurable `train`, made of named steps, and `Trainer`.

A run is fully determined by its step counter: every random draw uses a stateless seed
folded from (seed, step, replica), and the training data order of epoch e is a stateless
permutation seeded by (seed, e). Steps run in a compiled multi-step loop (no Python work per
step) under a `tf.distribute` strategy; gradients are summed across replicas, then
normalised per variable (Yu et al. 2017; `train.normalize_gradients = False` turns it off),
then applied by Adam (Appendix F of the paper). A
step whose loss or gradient is not finite is not applied; a run that never applied one, or
whose final evaluation is not finite, fails (`errors.RunFailed`). SIGTERM stops a run at the
next step boundary with a checkpoint (`preemption`); the same command continues it exactly.

One run can span the processes of several hosts (`tf.distribute.MultiWorkerMirroredStrategy`,
see `train`): every worker runs the same program in step, each on its share of every
global batch; the chief alone writes `model_dir` (`run_dir.worker_dir`), and every worker
resumes from the checkpoint the chief resumes from.

What a step minimises is a configurable, `train.loss` (see `losses`): a new training
method is a loss bound from a `.gin` file, with no change here. `run_dir` says what a run
writes in its `model_dir`, `checkpoints` how its checkpoints are read back and saved.
"""

import contextlib
import dataclasses
import inspect
import math
import os
import re
import time
from typing import Any, Callable, Dict

from absl import logging
import gin
import tensorflow as tf
import tf_keras

from brokenelbo import errors
from brokenelbo.data import pipeline
from brokenelbo.data.mnist import IMAGE_SHAPE, static_mnist  # pylint: disable=g-importing-member
from brokenelbo.models import vae as vae_lib
from brokenelbo.statistics import elbo
from brokenelbo.training import checkpoints
from brokenelbo.training import losses
from brokenelbo.training import objectives
from brokenelbo.training import optimizers
from brokenelbo.training import preemption
from brokenelbo.training import run_dir
from brokenelbo.training import summaries
from brokenelbo.utils import files
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


def _format_duration(seconds):
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


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
      Adam (the paper's Appendix F); `False` gives plain Adam, whose update is
      element-wise, so that independent models stacked in one variable (restarts trained
      as one batched computation) stay independent.

  Attributes:
    metric_names: Python `tuple` of `str`, the names of the loss's metrics, in the order of
      the means that `train_steps` returns after the loss itself.
  """

  def __init__(self, model, loss, strategy, total_steps, steps_per_epoch, seed,
               jit_compile=False, max_consecutive_bad_steps=10, mixed_precision=None,
               loss_scale=1., example_shape=IMAGE_SHAPE, normalize=True):
    self.strategy = strategy
    self.normalize = normalize
    self.loss_scale = loss_scale
    self.loss = loss
    self.steps_per_epoch = steps_per_epoch
    self.seed = seed
    self.max_consecutive_bad_steps = max_consecutive_bad_steps
    # Set (by `preemption.StopOnSigterm`) to end `train_steps` before its next step. Not
    # mirrored, not checkpointed.
    self.stop_requested = tf.Variable(False, trainable=False, name='stop_requested')
    with strategy.scope():
      with precision_policy(mixed_precision):  # Layers take the policy when built.
        self.vae = model()
      self.optimizer = optimizers.normalized_adam(total_steps=total_steps)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
      # Consecutive non-finite steps so far, across calls of `train_steps`.
      self.bad_run = tf.Variable(0, trainable=False, name='bad_run')
      # Traced once, not run (a loss may count its calls): builds every variable the loss
      # uses, and names its metrics.
      def trace(x):
        return loss(self.vae, x, seeds.step_seed(seed, 0), tf.constant(0, tf.int64),
                    tf.constant(0.))

      _, metrics = tf.function(trace, autograph=False).get_concrete_function(
          tf.TensorSpec([1, *example_shape], tf.float32)).structured_outputs
      self.metric_names = tuple(metrics)
      self.variables = self.vae.trainable_variables
      self.optimizer.build(self.variables)
    # Every function here is written in TensorFlow's own control flow and traced without
    # AutoGraph, so that nothing is converted from source, which would cost seconds at
    # every process's start (the model and the loss are traced as they are written).
    self._replica_step = tf.function(self._replica_step_fn, jit_compile=jit_compile,
                                     autograph=False)
    self.train_steps = tf.function(self._train_steps_fn, autograph=False)
    self._stop_agreed = tf.function(self._stop_agreed_fn, autograph=False)
    self._chief_step = tf.function(self._chief_step_fn, autograph=False)

  def distribute(self, dataset):
    """An iterator over `dataset`'s global batches split across the replicas.

    Each global batch is split into one share per replica. Under a multi-worker strategy
    every worker reads the whole stream and keeps its own replicas' shares
    (`tf.data.experimental.AutoShardPolicy.DATA`: the examples are in memory, not in files
    to divide), so that the workers together see each global batch exactly once.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = (
        tf.data.experimental.AutoShardPolicy.DATA)
    return iter(self.strategy.experimental_distribute_dataset(dataset.with_options(options)))

  def _stop_agreed_fn(self):
    """Whether a stop was requested in any process of the strategy.

    Each process reads its own `stop_requested`, which SIGTERM may set at different steps in
    the workers of a cluster; summed over the replicas, the decision is the same everywhere,
    so that every worker leaves the loop after the same step.
    """
    requested = self.strategy.run(lambda: tf.cast(self.stop_requested, tf.int32))
    return self.strategy.reduce(tf.distribute.ReduceOp.SUM, requested, axis=None) > 0

  def should_stop(self):
    """Python `bool`: a stop was requested (SIGTERM) in some process of the strategy. Every
    worker of a cluster must call it at the same point (it is a collective operation)."""
    return bool(self._stop_agreed())

  def _chief_step_fn(self):
    """The step counter of the first replica, which is the chief's (under
    `MultiWorkerMirroredStrategy` the chief's replicas come first)."""
    def own_share():
      first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
      return tf.where(first, self.step.value(), tf.zeros([], tf.int64))
    return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(own_share),
                                axis=None)

  def chief_step(self):
    """Python `int`, the step counter of the chief, in every process (a collective
    operation, as `should_stop`)."""
    return int(self._chief_step())

  def _replica_step_fn(self, x):
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
    applied by Adam, unless the loss or the gradient is not finite, in which case nothing changes.
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
      self.optimizer.apply_gradients(
          zip(update, self.variables),
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
          self._stop_agreed_fn(), lambda: (totals, good, grad_norm, tf.constant(True)),
          lambda: step(totals, good, grad_norm))
      return i + 1, totals, good, grad_norm, done

    _, totals, good, grad_norm, _ = tf.while_loop(
        lambda i, *state: (i < num_steps) & tf.logical_not(state[-1]), body,
        (tf.zeros_like(num_steps), tf.zeros([1 + len(self.metric_names)]), tf.constant(0.),
         tf.constant(0.), tf.constant(False)))
    return totals / tf.maximum(good, 1.), good, self.bad_run.value(), grad_norm


def step_loss(loss, objective):
  """`loss` with `train.objective` given to it if it has an `objective` parameter.

  Raises:
    UserError: if `objective` is not the default `beta_vae` but `loss` takes none.
  """
  if 'objective' in inspect.signature(loss).parameters:
    return lambda *args: loss(*args, objective=objective)
  if objective is not objectives.beta_vae:
    raise errors.UserError(f'train.objective is set but train.loss {loss.__name__} takes no '
                           'objective argument')
  return loss


@dataclasses.dataclass
class _Evaluator:
  """The evaluations of a run: whole-split ELBO, metrics records, summaries, checkpoints."""
  vae: Any
  evaluate: Callable[[Any], Dict[str, float]]  # `elbo.make_evaluate` of the run.
  eval_images: Dict[str, Any]
  metrics: run_dir.MetricsLog
  writer: Any
  manager: tf.train.CheckpointManager
  steps_per_epoch: int
  summary_images: int
  seed: int

  def __call__(self, step, save):
    """Evaluates every split at `step`, records it, and checkpoints if `save`."""
    results = {}
    epoch = step / self.steps_per_epoch
    beta = float(objectives.beta_schedule(epoch))
    for split, images in self.eval_images.items():
      result = self.evaluate(images)
      results[split] = result
      self.metrics.append(dict(step=step, epoch=epoch, split=split, beta=beta,
                               num_examples=int(images.shape[0]), **result))
      summaries.scalar_summaries(self.writer, step, f'eval/{split}', result)
      logging.info('eval step %d %s: rate %.3f distortion %.3f elbo %.3f', step, split,
                   result['rate'], result['distortion'], result['elbo'])
    last_split = list(self.eval_images.values())[-1]
    summaries.image_summaries(self.vae, last_split[:self.summary_images], step, self.writer,
                              self.seed)
    if save:
      checkpoints.save(self.manager, step)
    return results


def _load_data(dataset, max_train_examples, eval_splits, max_eval_examples, batch_size):
  """The training images and `{split: images}` to evaluate; bad input raises first."""
  train_images = dataset('train')[:max_train_examples]
  eval_images = {split: dataset(split)[:max_eval_examples] for split in eval_splits}
  if train_images.shape[0] // batch_size < 1:
    raise errors.UserError(f'batch_size {batch_size} exceeds the {train_images.shape[0]} '
                           'training examples')
  return train_images, eval_images


def _restore(trainer, model_dir, write_dir):
  """The checkpoint manager of `write_dir`, after resuming from the newest checkpoint of
  `model_dir` that reads back (see `checkpoints.restore_newest`).

  The chief (the process that writes `model_dir`) chooses that checkpoint; under a
  multi-worker strategy, every other worker then restores the same step from `model_dir`,
  read only, so that all resume from one state.
  """
  objects = dict(model=trainer.vae, optimizer=trainer.optimizer, step=trainer.step)
  chief = run_dir.is_chief(trainer.strategy)
  restored = checkpoints.restore_newest(objects, model_dir) if chief else None
  step = trainer.chief_step()
  if not chief and step:
    restored = checkpoints.restore_step(objects, model_dir, step)
  if restored:
    logging.info('Resumed from %s at step %d.', restored, int(trainer.step.numpy()))
  return tf.train.CheckpointManager(tf.train.Checkpoint(**objects), write_dir, max_to_keep=3)


def _log_progress(trainer, writer, means, good, grad_norm, current, num_steps, total_steps,
                  images_per_s, batch_size):
  """The progress line and the `train/*` scalars of one compiled call of `num_steps`
  steps, `good` of them applied (the means are over those)."""
  eta = (total_steps - current) * batch_size / max(images_per_s, 1e-9)
  where = (f'step {current}/{total_steps} epoch {current / trainer.steps_per_epoch:.2f}')
  if good == 0:
    logging.warning('%s | no step applied: all %d had a non-finite loss or gradient',
                    where, num_steps)
    return
  values = dict(zip(('loss',) + trainer.metric_names, (float(v) for v in means)))
  skipped = f' ({num_steps - good} non-finite skipped)' if good < num_steps else ''
  logging.info('%s %s%s | %.0f images/s | %s left', where,
               ' '.join(f'{k} {v:.3f}' for k, v in values.items()), skipped, images_per_s,
               _format_duration(eta))
  values.update(learning_rate=float(trainer.optimizer.learning_rate.numpy()),
                grad_norm=float(grad_norm), images_per_second=images_per_s)
  summaries.scalar_summaries(writer, current, 'train', values)


def _checkpoint_note(manager, model_dir):
  latest = manager.latest_checkpoint
  if latest:
    return f'the last good checkpoint, {os.path.basename(latest)}, is kept in {model_dir}'
  return f'no checkpoint was written in {model_dir}'


def _train_loop(trainer, iterator, evaluator, model_dir, write_dir, start_step, total_steps,
                eval_every_steps, log_every_steps, checkpoint_every_steps, batch_size):
  """Trains from `start_step` to `total_steps`; returns (the last evaluation or `{}`, the
  number of steps applied).

  Compiled calls end on multiples of `log_every_steps` and `eval_every_steps`, whatever the
  step a run resumed from. A stop requested (SIGTERM, `preemption`, in any process) ends the
  loop after the step in progress, with a checkpoint. This process writes into `write_dir`
  (`run_dir.worker_dir`).

  Raises:
    RunFailed: after `max_consecutive_bad_steps` non-finite steps in a row.
    Preempted: when a stop was requested, after the checkpoint.
  """
  current, results, applied, saved = start_step, {}, 0, start_step
  start_time = time.time()
  operative_config = os.path.join(write_dir, 'operative_config.gin')
  wrote_operative_config = tf.io.gfile.exists(operative_config)
  while current < total_steps and not trainer.should_stop():
    num_steps = min(log_every_steps - current % log_every_steps, total_steps - current,
                    eval_every_steps - current % eval_every_steps)
    means, good, bad_run, grad_norm = trainer.train_steps(iterator, tf.constant(num_steps))
    ran, good = int(trainer.step.numpy()) - current, int(good)
    if ran == 0:  # Stopped before the first step of the call.
      break
    current, applied = current + ran, applied + good
    if int(bad_run) >= trainer.max_consecutive_bad_steps:
      raise errors.RunFailed(
          f'training stopped at step {current}: {int(bad_run)} consecutive steps with a '
          f'non-finite loss or gradient; {_checkpoint_note(evaluator.manager, model_dir)}')
    images_per_s = (current - start_step) * batch_size / max(time.time() - start_time, 1e-9)
    _log_progress(trainer, evaluator.writer, means, good, grad_norm, current, ran,
                  total_steps, images_per_s, batch_size)
    if not wrote_operative_config:  # After the first steps, so that every value is used.
      files.write_atomic(operative_config, gin.operative_config_str())
      wrote_operative_config = True
    # No checkpoint right after a non-finite step: the last one stays the last good state.
    all_good = good == ran
    if current % eval_every_steps == 0 or current == total_steps:
      results = evaluator(current, save=all_good)
      saved = current if all_good else saved
    elif current // checkpoint_every_steps > (current - ran) // checkpoint_every_steps \
        and all_good:
      checkpoints.save(evaluator.manager, current)
      saved = current
  if trainer.should_stop():
    if saved != current:
      checkpoints.save(evaluator.manager, current)
    evaluator.writer.flush()
    latest = evaluator.manager.latest_checkpoint  # In `write_dir`; named as in model_dir.
    latest = os.path.join(model_dir, os.path.basename(latest)) if latest else 'no checkpoint yet'
    raise errors.Preempted(f'stopped by SIGTERM at step {current} of {total_steps} ({latest}): '
                           'rerun the same command to continue')
  return results, applied


def _make_strategy(strategy):
  """`strategy()`, or TensorFlow's default strategy if `strategy` is `None`.

  Called before any other TensorFlow op of the process: `MultiWorkerMirroredStrategy`
  configures the runtime's collective operations and starts this worker's server, which
  TensorFlow allows only before its runtime starts, and `SlurmClusterResolver` chooses the
  GPUs that the task sees.

  Raises:
    UserError: if the strategy cannot be created (a malformed `TF_CONFIG`, a
      `SlurmClusterResolver` outside a Slurm job step or without `nvidia-smi` to count
      GPUs, TensorFlow already running in this process).
  """
  if strategy is None:
    return tf.distribute.get_strategy()
  try:
    return strategy()
  except (ValueError, RuntimeError, KeyError, OSError) as e:
    message = (str(e).splitlines() or [type(e).__name__])[0]  # Gin appends lines.
    raise errors.UserError(f'train.strategy cannot be created: {message}') from None


@contextlib.contextmanager
def _lost_worker_fails(model_dir):
  """Within the block, a worker of the cluster that stopped is a `RunFailed`.

  Under `MultiWorkerMirroredStrategy`, TensorFlow's coordination service notices a worker
  that stopped (killed, or its host lost) by its missing heartbeats, and aborts the
  collective operations of the others (`tf.errors.UnavailableError`). The run cannot go on
  without it: every worker must be started again, and resumes from the last checkpoint.
  """
  try:
    yield
  except tf.errors.UnavailableError as e:
    tasks = re.findall(r'^/job:(\w+)/replica:\d+/task:(\d+)$', e.message, re.MULTILINE)
    who = ', '.join(f'{job} {task}' for job, task in tasks) or 'a worker'
    raise errors.RunFailed(f'{who} of the cluster stopped, which aborts the run; start every '
                           'worker again with the same command to continue from the last '
                           f'checkpoint in {model_dir}') from None


def _check_result(results, start_step, applied, model_dir):
  """Raises `RunFailed` if no step was ever applied or the final metrics are not finite."""
  if start_step == 0 and applied == 0:
    raise errors.RunFailed(f'no training step of {model_dir} had a finite loss and gradient, '
                           'so nothing was learned; the run failed')
  bad = [f'{split} {name} {value}' for split, result in results.items()
         for name, value in result.items() if not math.isfinite(value)]
  if bad:
    raise errors.RunFailed(f'the final evaluation is not finite ({", ".join(bad[:3])}): the '
                           f'run diverged; its metrics are in {model_dir}/metrics.jsonl')


@gin.configurable(denylist=['model_dir', 'overwrite'])
def train(model_dir,
          overwrite=False,
          model=vae_lib.VAE,
          loss=losses.rate_distortion_loss,
          objective=objectives.beta_vae,
          dataset=static_mnist,
          batch_size=100,
          epochs=200.,
          max_train_examples=None,
          eval_every_epochs=10.,
          eval_splits=('train', 'test'),
          eval_batch_size=500,
          max_eval_examples=None,
          log_every_steps=100,
          checkpoint_every_steps=5000,
          max_consecutive_bad_steps=10,
          summary_images=8,
          strategy=None,
          jit_compile=False,
          mixed_precision=None,
          loss_scale=1.,
          normalize_gradients=True,
          deterministic=True,
          seed=0):
  """Trains a model and evaluates it; the root configurable of a training run.

  Set-up (strategy, data, `model_dir` and its lock, determinism, model), restore (the
  newest checkpoint of `model_dir` that reads back, if any), the loop (compiled calls of
  `log_every_steps` steps, with progress summaries), evaluation (every `eval_every_epochs`
  and at the end, with a checkpoint), the check of the result (finite metrics).

  Args:
    model_dir: Python `str`, where the run writes everything (a flag, not gin-bindable).
    overwrite: Python `bool`; start afresh, removing the files of any run in `model_dir`
      (a flag, not gin-bindable).
    model: callable returning a `vae.VAE` (`@VAE`, whose parts are configured there).
    loss: what a step minimises, `loss(model, x, seed, step, epoch) -> (loss, metrics)`
      (`@rate_distortion_loss`; see `losses`).
    objective: `objective(rate, distortion, beta)` on batch means (`@beta_vae`,
      `@target_rate`), given to a `loss` that takes one; beta follows
      `objectives.beta_schedule`.
    dataset: `dataset(split)` -> examples `[N, ...]` (`@static_mnist`: uint8 images
      `[N, 28, 28, 1]`); the model sees them as `float32`.
    batch_size: Python `int`, global batch (the paper does not state it; 100 here).
    epochs: Python `float`, training length (paper: 100 + 100).
    max_train_examples: Python `int` or `None`, use only the first examples (smoke runs).
    eval_every_epochs: Python `float`, evaluation interval; there is always a final one.
    eval_splits: Python `tuple` of split names evaluated each time.
    eval_batch_size: Python `int`.
    max_eval_examples: Python `int` or `None`, evaluate on the first examples only.
    log_every_steps: Python `int`, steps per compiled call, progress line and summaries.
    checkpoint_every_steps: Python `int`, checkpoint interval (also at every evaluation).
    max_consecutive_bad_steps: Python `int`, stop after this many non-finite steps in a row.
    summary_images: Python `int`, reconstructions and samples written to TensorBoard.
    strategy: `None` (the default strategy) or a callable returning a
      `tf.distribute.Strategy`: `@tf.distribute.MirroredStrategy` (the devices of one
      host) or `@tf.distribute.MultiWorkerMirroredStrategy` (one run over several
      processes or hosts; `batch_size` is split over all their replicas; the chief alone
      writes `model_dir`, which every worker must see on a shared file system). For two
      hosts, run the same command on both, with
      `TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]},
      "task": {"type": "worker", "index": I}}'` (I = 0 on host1, the chief; 1 on host2);
      or, under Slurm, with `MultiWorkerMirroredStrategy.cluster_resolver =
      @SlurmClusterResolver()` bound, start it with `srun --nodes=2 --ntasks-per-node=1`.
    jit_compile: Python `bool`, compile the step with XLA.
    mixed_precision: `None` (float32) or 'mixed_float16' / 'mixed_bfloat16': networks
      compute in 16 bits on GPUs/TPUs; variables, densities and metrics stay float32.
    loss_scale: Python `float`, static loss scale for 'mixed_float16' (e.g. 1024.).
    normalize_gradients: Python `bool`, divide each variable's gradient by its L2 norm
      before Adam (Appendix F); `False`: plain Adam.
    deterministic: Python `bool`, TensorFlow op determinism: the same seed and config
      give the same metrics.
    seed: Python `int`, the seed of parameters, data order and every z sample.

  Returns:
    The final evaluation, a `dict` split -> {rate, distortion, elbo}.

  Raises:
    UserError: bad input, or another process holds `model_dir` (`run_dir.RunLock`).
    RunFailed: the run diverged (`max_consecutive_bad_steps` non-finite steps in a row, a
      final evaluation that is not finite, or no step ever applied), no checkpoint reads
      back, a checkpoint could not be saved (a full disk), or a worker of the cluster
      stopped.
    Preempted: SIGTERM arrived; the run stopped at a step boundary after a checkpoint.
  """
  # Set-up. The strategy first, before any other TensorFlow op (`_make_strategy`). Bad
  # input (a negative beta, missing or corrupted data, a loss that takes no objective, an
  # unwritable or busy model_dir) is reported before anything is written. This process
  # writes into `write_dir`: `model_dir`, unless it is a worker of a cluster other than the
  # chief (`run_dir.worker_dir`).
  strategy = _make_strategy(strategy)
  objectives.beta_schedule(0.)
  loss = step_loss(loss, objective)
  train_images, eval_images = _load_data(dataset, max_train_examples, eval_splits,
                                         max_eval_examples, batch_size)
  with run_dir.worker_dir(model_dir, strategy) as write_dir, run_dir.RunLock(write_dir), \
      run_dir.failure_record(write_dir), _lost_worker_fails(model_dir), \
      preemption.StopOnSigterm() as stop:
    run_dir.check_model_dir(write_dir, gin.config_str(), overwrite)
    tf_keras.utils.set_random_seed(seed)
    if deterministic:
      tf.config.experimental.enable_op_determinism()
    steps_per_epoch = train_images.shape[0] // batch_size
    total_steps = max(int(round(epochs * steps_per_epoch)), 1)
    eval_every_steps = max(int(round(eval_every_epochs * steps_per_epoch)), 1)
    trainer = Trainer(model, loss, strategy, total_steps, steps_per_epoch, seed,
                      jit_compile=jit_compile,
                      max_consecutive_bad_steps=max_consecutive_bad_steps,
                      mixed_precision=mixed_precision, loss_scale=loss_scale,
                      example_shape=train_images.shape[1:], normalize=normalize_gradients)
    stop.attach(trainer.stop_requested)

    # Restore: the run continues from its newest readable checkpoint; later metrics and
    # events go.
    manager = _restore(trainer, model_dir, write_dir)
    start_step = int(trainer.step.numpy())
    metrics = run_dir.MetricsLog(os.path.join(write_dir, 'metrics.jsonl'), start_step)
    run_dir.truncate_event_files(write_dir, start_step)
    writer = tf.summary.create_file_writer(write_dir)
    if start_step == 0:
      family = getattr(trainer.vae, 'family', '???')  # A user's own model may not say.
      summaries.hparams_summary(writer, summaries.run_hparams(family, dataset, epochs,
                                                              batch_size, seed))
    evaluate = elbo.make_evaluate(trainer.vae, eval_batch_size, seed + 1)
    evaluator = _Evaluator(trainer.vae, evaluate, eval_images, metrics, writer, manager,
                           steps_per_epoch, summary_images, seed)

    # The loop, with its evaluations.
    logging.info('Training %d steps (%d per epoch, batch %d, %d replica(s)) in %s.',
                 total_steps, steps_per_epoch, batch_size, strategy.num_replicas_in_sync,
                 model_dir)
    iterator = trainer.distribute(
        pipeline.train_dataset(train_images, batch_size, seed, start_step))
    try:
      results, applied = _train_loop(
          trainer, iterator, evaluator, model_dir, write_dir, start_step, total_steps,
          eval_every_steps, log_every_steps, checkpoint_every_steps, batch_size)
      if not results:  # Resumed after the last step: evaluate again for the caller.
        results = {split: evaluator.evaluate(images) for split, images in eval_images.items()}
    finally:
      writer.flush()
    _check_result(results, start_step, applied, model_dir)
    return results
