"""The training loop: compiled calls of the step between periodic actions, as in Flax's
`train_and_evaluate` with CLU's periodic actions.

  restore the newest checkpoint; drop metrics and events past it
  while step < total_steps and no stop is agreed (`distributed.Agreement`):
    n = steps to the next multiple of an action's `every_steps`, or to the end
    chunk = trainer.train_steps(n)           # compiled: no Python work per step
    for action in actions: action(chunk)     # at the step boundary, in this order

The actions: `FailOnDivergence` (`max_consecutive_bad_steps` non-finite steps in a row:
`RunFailed`), `ReportProgress` (a progress line and the `train/*` scalars; every
`log_every_steps`), `WriteOperativeConfig` (once, after the first steps, when every
configurable has been called), `Evaluate` (every `eval_every_steps` and at the end: each
split's rate, distortion and ELBO into `metrics.jsonl`, with the loss's `metrics_at` (beta),
and `eval/*` scalars and images), `Checkpoint` (after each evaluation and past each multiple
of `checkpoint_every_steps`, never right after a non-finite step). Compiled calls therefore
end on multiples of `log_every_steps` and `eval_every_steps` whatever the step a run resumed
from. A stop (SIGTERM in any process, `preemption`) ends the loop after the step in progress
with a checkpoint and `errors.Preempted`; the same command continues exactly.

This process writes into `write_dir` (`run_dir.worker_dir`: `model_dir` for the chief).
"""

import dataclasses
import os
import time
from typing import Any, Dict, List

from absl import logging
import gin
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.data import pipeline
from brokenelbo.statistics import elbo
from brokenelbo.training import checkpoints
from brokenelbo.training import distributed
from brokenelbo.training import losses
from brokenelbo.training import run_dir
from brokenelbo.training import summaries
from brokenelbo.utils import files


@dataclasses.dataclass(frozen=True)
class Schedule:
  """When the loop acts, in steps."""
  steps_per_epoch: int
  total_steps: int
  eval_every_steps: int
  log_every_steps: int
  checkpoint_every_steps: int

  @classmethod
  def from_epochs(cls, steps_per_epoch, epochs, eval_every_epochs, log_every_steps,
                  checkpoint_every_steps):
    """The schedule of `epochs` epochs evaluated every `eval_every_epochs` (each at least
    one step)."""
    return cls(steps_per_epoch, max(int(round(epochs * steps_per_epoch)), 1),
               max(int(round(eval_every_epochs * steps_per_epoch)), 1), log_every_steps,
               checkpoint_every_steps)


@dataclasses.dataclass(frozen=True)
class Chunk:
  """One compiled call of the step, as Python values.

  Attributes:
    step: the step counter after the call.
    ran: the steps it ran; `good` of them were applied (finite loss and gradient).
    bad_run: the consecutive non-finite steps so far (a run may have begun in an earlier
      call).
    means: `{'loss': ..., <metric>: ...}`, means over the good steps.
    grad_norm: the last step's global gradient norm.
  """
  step: int
  ran: int
  good: int
  bad_run: int
  means: Dict[str, float]
  grad_norm: float

  @property
  def all_good(self):
    return self.good == self.ran


def run_chunk(trainer, iterator, num_steps):
  """`trainer.train_steps(iterator, num_steps)` as a `Chunk`."""
  before = int(trainer.step.numpy())
  means, good, bad_run, grad_norm = trainer.train_steps(iterator, tf.constant(num_steps))
  return Chunk(step=int(trainer.step.numpy()), ran=int(trainer.step.numpy()) - before,
               good=int(good), bad_run=int(bad_run),
               means=dict(zip(('loss',) + trainer.metric_names, map(float, means.numpy()))),
               grad_norm=float(grad_norm))


def _format_duration(seconds):
  seconds = int(seconds)
  return f'{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s'


class ReportProgress:
  """A progress line and the `train/*` scalars (loss, metrics, learning rate, gradient
  norm, images per second) after each compiled call, which ends every `every_steps`."""

  def __init__(self, writer, optimizer, schedule, batch_size, start_step):
    self.every_steps = schedule.log_every_steps
    self._writer, self._optimizer, self._schedule = writer, optimizer, schedule
    self._batch_size = batch_size
    self._start_step, self._start_time = start_step, time.time()

  def __call__(self, chunk):
    schedule = self._schedule
    images_per_s = (chunk.step - self._start_step) * self._batch_size / max(
        time.time() - self._start_time, 1e-9)
    where = (f'step {chunk.step}/{schedule.total_steps} '
             f'epoch {chunk.step / schedule.steps_per_epoch:.2f}')
    if chunk.good == 0:
      logging.warning('%s | no step applied: all %d had a non-finite loss or gradient',
                      where, chunk.ran)
      return
    eta = (schedule.total_steps - chunk.step) * self._batch_size / max(images_per_s, 1e-9)
    skipped = (f' ({chunk.ran - chunk.good} non-finite skipped)' if not chunk.all_good
               else '')
    logging.info('%s %s%s | %.0f images/s | %s left', where,
                 ' '.join(f'{k} {v:.3f}' for k, v in chunk.means.items()), skipped,
                 images_per_s, _format_duration(eta))
    values = dict(chunk.means, learning_rate=float(self._optimizer.learning_rate.numpy()),
                  grad_norm=chunk.grad_norm, images_per_second=images_per_s)
    summaries.scalar_summaries(self._writer, chunk.step, 'train', values)


class WriteOperativeConfig:
  """`operative_config.gin`, once, after the first steps (when every configurable the run
  uses has been called); a resumed run that has one keeps it."""
  every_steps = None

  def __init__(self, path):
    self._path = path
    self._written = tf.io.gfile.exists(path)

  def __call__(self, chunk):
    del chunk
    if not self._written:
      files.write_atomic(self._path, gin.operative_config_str())
      self._written = True


class Evaluate:
  """Every `every_steps` and at the end: each split's whole-split rate, distortion and ELBO
  (`elbo.make_evaluate`), recorded in `metrics.jsonl` with the loss's `metrics_at` of the
  epoch (beta), as `eval/<split>/*` scalars, and images of the last split.

  Attributes:
    results: `{split: {name: float}}` of the last evaluation of this attempt, or `{}`.
  """

  def __init__(self, trainer, eval_images, metrics_log, writer, schedule, eval_batch_size,
               summary_images):
    self.every_steps = schedule.eval_every_steps
    self._trainer, self._eval_images, self._log = trainer, eval_images, metrics_log
    self._writer, self._schedule, self._summary_images = writer, schedule, summary_images
    self._evaluate = elbo.make_evaluate(trainer.vae, eval_batch_size, trainer.seed + 1)
    self.results = {}

  def due(self, step):
    return step % self.every_steps == 0 or step == self._schedule.total_steps

  def __call__(self, chunk):
    if self.due(chunk.step):
      self.results = self.record(chunk.step)

  def evaluate(self):
    """`{split: {name: float}}` of the model as it is, recorded nowhere."""
    return {split: self._evaluate(images) for split, images in self._eval_images.items()}

  def record(self, step):
    """Evaluates every split at `step` and records it; returns the results."""
    epoch = step / self._schedule.steps_per_epoch
    loss_values = losses.metrics_at(self._trainer.loss, epoch)
    results = {}
    for split, images in self._eval_images.items():
      result = results[split] = self._evaluate(images)
      self._log.append(dict(step=step, epoch=epoch, split=split, **loss_values,
                            num_examples=int(images.shape[0]), **result))
      summaries.scalar_summaries(self._writer, step, f'eval/{split}', result)
      logging.info('eval step %d %s: rate %.3f distortion %.3f elbo %.3f', step, split,
                   result['rate'], result['distortion'], result['elbo'])
    last_split = list(self._eval_images.values())[-1]
    summaries.image_summaries(self._trainer.vae, last_split[:self._summary_images], step,
                              self._writer, self._trainer.seed)
    return results


class Checkpoint:
  """A checkpoint at each step where `also_at(step)` (each evaluation) and at the first
  step boundary past each multiple of `every_steps`, unless a step of the last compiled
  call was not finite: the last checkpoint then stays the last good state.

  Args:
    manager: the run's `tf.train.CheckpointManager` (of `write_dir`).
    every_steps: Python `int`, `train.checkpoint_every_steps`.
    also_at: `also_at(step) -> bool`.
    model_dir: Python `str`, where the run's checkpoints are, for messages.
    start_step: Python `int`, the step the attempt resumed from (saved already).
  """
  every_steps = None  # Does not end compiled calls.

  def __init__(self, manager, every_steps, also_at, model_dir, start_step):
    self._manager, self._every, self._also_at = manager, every_steps, also_at
    self._model_dir = model_dir
    self.saved = start_step

  def __call__(self, chunk):
    crossed = chunk.step // self._every > (chunk.step - chunk.ran) // self._every
    if chunk.all_good and (self._also_at(chunk.step) or crossed):
      self.save(chunk.step)

  def save(self, step):
    if step != self.saved:
      checkpoints.save(self._manager, step)
      self.saved = step

  def latest(self):
    """The newest checkpoint's path in `model_dir` (the manager's is in `write_dir`), or
    `None`."""
    latest = self._manager.latest_checkpoint
    return os.path.join(self._model_dir, os.path.basename(latest)) if latest else None

  def note(self):
    latest = self.latest()
    if latest:
      return (f'the last good checkpoint, {os.path.basename(latest)}, is kept in '
              f'{self._model_dir}')
    return f'no checkpoint was written in {self._model_dir}'


class FailOnDivergence:
  """`errors.RunFailed` once `max_bad` steps in a row had a non-finite loss or gradient."""
  every_steps = None

  def __init__(self, max_bad, checkpoint):
    self._max_bad, self._checkpoint = max_bad, checkpoint

  def __call__(self, chunk):
    if chunk.bad_run >= self._max_bad:
      raise errors.RunFailed(
          f'training stopped at step {chunk.step}: {chunk.bad_run} consecutive steps with a '
          f'non-finite loss or gradient; {self._checkpoint.note()}')


def next_boundary(step, total_steps, actions):
  """The first multiple of an action's `every_steps` after `step`, or `total_steps`."""
  periods = [a.every_steps for a in actions if a.every_steps]
  return min([total_steps] + [(step // p + 1) * p for p in periods])


def run(trainer, agreement, iterator, actions, start_step, total_steps):
  """Trains from `start_step` to `total_steps`, or until a stop is agreed, calling every
  action after each compiled call; returns (the step reached, the steps applied)."""
  step, applied = start_step, 0
  while step < total_steps and not agreement.should_stop():
    chunk = run_chunk(trainer, iterator, next_boundary(step, total_steps, actions) - step)
    if chunk.ran == 0:  # Stopped before the first step of the call.
      break
    step, applied = chunk.step, applied + chunk.good
    for action in actions:
      action(chunk)
  return step, applied


@dataclasses.dataclass(frozen=True)
class Outcome:
  """What an attempt ended with: the final evaluation, the steps, the metrics records."""
  results: Dict[str, Dict[str, float]]
  start_step: int
  step: int
  applied: int
  records: List[Dict[str, Any]]


def train_and_evaluate(trainer, schedule, train_images, eval_images, model_dir, write_dir,
                       batch_size, eval_batch_size, summary_images, hparams):
  """Restores the run, trains it to the end with the periodic actions, and returns its
  `Outcome`; the final evaluation is that of the last step (computed again, unrecorded,
  if the run had ended before).

  Raises:
    RunFailed: after `max_consecutive_bad_steps` non-finite steps in a row.
    Preempted: when a stop was requested, after the checkpoint.
  """
  agreement = distributed.Agreement(trainer.strategy, trainer.stop_requested, trainer.step)
  objects = trainer.checkpoint_objects
  restored = distributed.restore(objects, model_dir, trainer.strategy, agreement)
  start_step = int(trainer.step.numpy())
  if restored:
    logging.info('Resumed from %s at step %d.', restored, start_step)
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(**objects), write_dir,
                                       max_to_keep=3)
  # The steps after the checkpoint run again: their metrics and events go.
  metrics = run_dir.MetricsLog(os.path.join(write_dir, 'metrics.jsonl'), start_step)
  run_dir.truncate_event_files(write_dir, start_step)
  writer = tf.summary.create_file_writer(write_dir)
  if start_step == 0:
    summaries.hparams_summary(writer, hparams)
  evaluate = Evaluate(trainer, eval_images, metrics, writer, schedule, eval_batch_size,
                      summary_images)
  checkpoint = Checkpoint(manager, schedule.checkpoint_every_steps, evaluate.due, model_dir,
                          start_step)
  actions = [FailOnDivergence(trainer.max_consecutive_bad_steps, checkpoint),
             ReportProgress(writer, trainer.optimizer, schedule, batch_size, start_step),
             WriteOperativeConfig(os.path.join(write_dir, 'operative_config.gin')),
             evaluate, checkpoint]
  logging.info('Training %d steps (%d per epoch, batch %d, %d replica(s)) in %s.',
               schedule.total_steps, schedule.steps_per_epoch, batch_size,
               trainer.strategy.num_replicas_in_sync, model_dir)
  iterator = trainer.distribute(
      pipeline.train_dataset(train_images, batch_size, trainer.seed, start_step))
  try:
    step, applied = run(trainer, agreement, iterator, actions, start_step,
                        schedule.total_steps)
    if agreement.should_stop():
      _stop(checkpoint, writer, step, schedule.total_steps)
    results = evaluate.results or evaluate.evaluate()  # Resumed after the last step.
  finally:
    writer.close()  # Also on failure: a process that trains again keeps no file open.
  return Outcome(results, start_step, step, applied, list(metrics.records))


def _stop(checkpoint, writer, step, total_steps):
  """Saves `step` (unless saved) and raises `errors.Preempted`."""
  checkpoint.save(step)
  writer.flush()
  raise errors.Preempted(f'stopped by SIGTERM at step {step} of {total_steps} '
                         f'({checkpoint.latest() or "no checkpoint yet"}): rerun the same '
                         'command to continue')
