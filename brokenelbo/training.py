"""The training loop: the root configurable `train` and its evaluation.

A run is fully determined by its step counter: every random draw uses a stateless seed
folded from (seed, step, replica), and the training data order of epoch e is a stateless
permutation seeded by (seed, e). Steps run in a compiled multi-step loop (no Python work per
step) under a `tf.distribute` strategy; gradients are summed across replicas, then
normalised per variable, then applied by Adam. A step whose loss or gradient is not finite
is not applied.

Outputs in `model_dir`: `config.gin` (the config as parsed), `operative_config.gin` (after
the first steps), TensorBoard summaries, checkpoints (`ckpt-*`), `metrics.jsonl` (one JSON
object per split per evaluation, nats per example over the whole split).
"""

import contextlib
import json
import math
import os
import time

from absl import logging
import gin
import numpy as np
import tensorflow as tf
import tf_keras

from brokenelbo import cli
from brokenelbo import data
from brokenelbo import files
from brokenelbo import model as model_lib
from brokenelbo import objectives
from brokenelbo import optimizers

IMAGE_SHAPE = (28, 28, 1)


def step_seed(seed, step, replica=0):
  """The stateless seed `[2]` of one training step on one replica."""
  base = tf.stack([tf.constant(seed, tf.int64), tf.constant(0, tf.int64)])
  return tf.random.experimental.stateless_fold_in(
      tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64)), replica)


def make_evaluate(vae, batch_size, seed, num_samples=1):
  """Returns `evaluate(images)`: rate, distortion and ELBO in nats per example over all of
  `images`, averaged over `num_samples` draws z ~ e(z|x) per example from fixed seeds (the
  first draw is the same for every `num_samples`); compiled once."""

  @tf.function(reduce_retracing=True)
  def sums(x, batch):
    total_rate = total_distortion = tf.constant(0.)
    for k in range(num_samples):
      rate, distortion = vae.rate_distortion(x, step_seed(seed, batch, replica=k))
      total_rate += tf.reduce_sum(rate)
      total_distortion += tf.reduce_sum(distortion)
    return total_rate / num_samples, total_distortion / num_samples

  def evaluate(images):
    dataset = data.make_dataset(images, batch_size)
    total_rate = total_distortion = 0.
    for batch, x in enumerate(dataset):
      r, d = sums(x, tf.constant(batch, tf.int64))
      total_rate += float(r)
      total_distortion += float(d)
    n = images.shape[0]
    rate, distortion = total_rate / n, total_distortion / n
    return dict(rate=rate, distortion=distortion, elbo=-(rate + distortion))

  return evaluate


# What a run writes in its model_dir: the only files `--overwrite` removes.
RUN_FILES = ('config.gin', 'operative_config.gin', 'metrics.jsonl', 'checkpoint', 'ckpt-*',
             'events.out.tfevents.*', '*.tmp')


def _check_model_dir(model_dir, config_str, overwrite):
  """Creates `model_dir`, or checks that it holds a run of the same config.

  A directory holding a run of another config, or files that are not a run's, is refused
  unless `overwrite`, which starts afresh: it removes only the files a run writes
  (`RUN_FILES`), never anything else in the directory.
  """
  try:
    tf.io.gfile.makedirs(model_dir)
    probe = os.path.join(model_dir, '.write_test')
    with open(probe, 'w') as f:
      f.write('ok')
    os.remove(probe)
  except (OSError, tf.errors.OpError) as e:
    reason = getattr(e, 'strerror', None) or getattr(e, 'message', None) or str(e)
    raise cli.UserError(f'model_dir {model_dir} is not writable: {reason}') from None
  config_path = os.path.join(model_dir, 'config.gin')
  if tf.io.gfile.exists(config_path):
    with tf.io.gfile.GFile(config_path) as f:
      same = f.read() == config_str
    reason = None if same else 'holds a run with a different config'
  else:
    reason = 'is not empty and holds no run' if tf.io.gfile.listdir(model_dir) else None
  if reason and not overwrite:
    raise cli.UserError(f'{model_dir} {reason}; pass --overwrite to start afresh there '
                        '(only the files of a run are removed), or choose another '
                        '--model_dir')
  if overwrite:
    for pattern in RUN_FILES:
      for path in tf.io.gfile.glob(os.path.join(model_dir, pattern)):
        tf.io.gfile.remove(path)
  files.write_atomic(config_path, config_str)


class MetricsLog:
  """`metrics.jsonl`: one JSON object per line; lines past a resumed step are dropped."""

  def __init__(self, path, resume_step):
    self.path = path
    self.records = []
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        for line in f:
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            continue  # A line cut by a crash: it is recomputed.
          if record['step'] <= resume_step:
            self.records.append(record)
    self._flush()

  def append(self, record):
    self.records.append(record)
    self._flush()

  def _flush(self):
    files.write_atomic(self.path, ''.join(json.dumps(r) + '\n' for r in self.records))


def truncate_event_files(model_dir, last_step):
  """Drops TensorBoard events past `last_step` (and any record cut by a crash).

  A resumed run recomputes every step after its checkpoint; without this, TensorBoard would
  show those steps twice. Each file is rewritten through a temporary file and a rename.
  """
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    kept, dropped = [], 0
    try:
      for record in tf.data.TFRecordDataset(path):
        if tf.compat.v1.Event.FromString(record.numpy()).step <= last_step:
          kept.append(record.numpy())
        else:
          dropped += 1
    except tf.errors.DataLossError:
      dropped += 1  # The record a crash cut short.
    if dropped:
      with tf.io.TFRecordWriter(path + '.tmp') as writer:
        for record in kept:
          writer.write(record)
      tf.io.gfile.rename(path + '.tmp', path, overwrite=True)


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
    model: callable returning a `model.VAE`, built under `strategy.scope()`.
    objective: `objective(rate, distortion, beta)` on batch means.
    strategy: a `tf.distribute.Strategy`.
    total_steps: Python `int`, the length of the learning-rate schedule.
    steps_per_epoch: Python `int`, to turn steps into epochs for the beta schedule.
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
  """

  def __init__(self, model, objective, strategy, total_steps, steps_per_epoch, seed,
               jit_compile=False, max_consecutive_bad_steps=10, mixed_precision=None,
               loss_scale=1.):
    self.strategy = strategy
    self.loss_scale = loss_scale
    self.objective = objective
    self.steps_per_epoch = steps_per_epoch
    self.seed = seed
    self.max_consecutive_bad_steps = max_consecutive_bad_steps
    with strategy.scope():
      with precision_policy(mixed_precision):  # Layers take the policy when built.
        self.vae = model()
      self.optimizer = optimizers.normalized_adam(total_steps=total_steps)
      self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name='step')
      # Consecutive non-finite steps so far, across calls of `train_steps`.
      self.bad_run = tf.Variable(0, trainable=False, name='bad_run')
      self.vae.rate_distortion(tf.zeros([1, *IMAGE_SHAPE]), step_seed(seed, 0))
      self.variables = self.vae.trainable_variables
      self.optimizer.build(self.variables)
    self._replica_step = tf.function(self._replica_step_fn, jit_compile=jit_compile)
    self.train_steps = tf.function(self._train_steps_fn)

  def distribute(self, dataset):
    """An iterator over `dataset`'s global batches split across the replicas."""
    return iter(self.strategy.experimental_distribute_dataset(dataset))

  def _replica_step_fn(self, x):
    """Loss statistics and gradients of one replica's share of the global batch.

    The loss is divided by the number of replicas, so that the sum of the replicas'
    gradients is the gradient of the global batch mean. No cross-replica communication
    happens here, so this function can be compiled with XLA on its own.
    """
    context = tf.distribute.get_replica_context()
    beta = objectives.beta_schedule(tf.cast(self.step, tf.float32) / self.steps_per_epoch)
    with tf.GradientTape() as tape:
      rate, distortion = self.vae.rate_distortion(
          x, step_seed(self.seed, self.step, context.replica_id_in_sync_group))
      mean_rate, mean_distortion = tf.reduce_mean(rate), tf.reduce_mean(distortion)
      loss = self.objective(mean_rate, mean_distortion, beta)
      replica_loss = loss * self.loss_scale / self.strategy.num_replicas_in_sync
    gradients = tape.gradient(replica_loss, self.variables)
    if self.loss_scale != 1.:
      gradients = [g / self.loss_scale for g in gradients]
    return tf.stack([loss, mean_rate, mean_distortion]), gradients, beta

  def _step(self, x):
    """One training step across the replicas (cross-replica context).

    Gradients are summed over replicas, then normalised per variable and applied by Adam,
    unless the loss or the gradient is not finite, in which case nothing changes.
    """
    stats, gradients, beta = self.strategy.run(self._replica_step, args=(x,))
    reduce = self.strategy.reduce
    gradients = reduce(tf.distribute.ReduceOp.SUM, gradients, axis=None)
    stats = reduce(tf.distribute.ReduceOp.MEAN, stats, axis=None)
    beta = self.strategy.experimental_local_results(beta)[0]
    grad_norm = tf.linalg.global_norm(gradients)
    finite = tf.math.is_finite(stats[0]) & tf.math.is_finite(grad_norm)

    def apply():
      self.optimizer.apply_gradients(
          zip(optimizers.normalize_gradients(gradients), self.variables),
          skip_gradients_aggregation=True)
      return tf.constant(0)

    tf.cond(finite, apply, lambda: tf.constant(0))
    return stats, grad_norm, beta, finite

  def _train_steps_fn(self, iterator, num_steps):
    """Runs up to `num_steps` steps; returns mean (loss, rate, distortion) of good steps,
    the number of good steps, the current run of consecutive bad steps (which may have
    begun in an earlier call), the last gradient norm and the last beta."""
    totals = tf.zeros([3])
    good = tf.constant(0.)
    grad_norm = beta = tf.constant(0.)
    for _ in tf.range(num_steps):
      stats, grad_norm, beta, finite = self._step(next(iterator))
      self.step.assign_add(1)
      totals += tf.where(finite, stats, 0.)
      good += tf.cast(finite, tf.float32)
      self.bad_run.assign(tf.where(finite, 0, self.bad_run + 1))
      if self.bad_run >= self.max_consecutive_bad_steps:
        break
    return totals / tf.maximum(good, 1.), good, self.bad_run.value(), grad_norm, beta


@gin.configurable
def train(model_dir,
          overwrite=False,
          model=model_lib.VAE,
          objective=objectives.beta_vae,
          dataset=data.static_mnist,
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
          deterministic=True,
          seed=0):
  """Trains a VAE and evaluates it; the root configurable of a training run.

  Args:
    model_dir: Python `str`, where the run writes everything (not gin-bound: a flag).
    overwrite: Python `bool`; start afresh, removing the files of any run in `model_dir`.
    model: callable returning a `model.VAE` (`@VAE`, whose parts are configured there).
    objective: `objective(rate, distortion, beta)` on batch means (`@beta_vae`,
      `@target_rate`); beta follows `objectives.beta_schedule`.
    dataset: `dataset(split)` -> uint8 images `[N, 28, 28, 1]` (`@static_mnist`).
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
      `tf.distribute.Strategy` (e.g. `@tf.distribute.MirroredStrategy`).
    jit_compile: Python `bool`, compile the step with XLA.
    mixed_precision: `None` (float32) or 'mixed_float16' / 'mixed_bfloat16': networks
      compute in 16 bits on GPUs/TPUs; variables, densities and metrics stay float32.
    loss_scale: Python `float`, static loss scale for 'mixed_float16' (e.g. 1024.).
    deterministic: Python `bool`, TensorFlow op determinism: the same seed and config
      give the same metrics.
    seed: Python `int`, the seed of parameters, data order and every z sample.

  Returns:
    The final evaluation, a `dict` split -> {rate, distortion, elbo}.
  """
  # Bad input (a negative beta, missing or corrupted data) is reported before anything is
  # written to model_dir.
  objectives.beta_schedule(0.)
  train_images = dataset('train')[:max_train_examples]
  eval_images = {split: dataset(split)[:max_eval_examples] for split in eval_splits}
  config_str = gin.config_str()
  _check_model_dir(model_dir, config_str, overwrite)
  tf_keras.utils.set_random_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()
  strategy = strategy() if strategy is not None else tf.distribute.get_strategy()
  steps_per_epoch = train_images.shape[0] // batch_size
  if steps_per_epoch < 1:
    raise cli.UserError(f'batch_size {batch_size} exceeds the {train_images.shape[0]} '
                        'training examples')
  total_steps = max(int(round(epochs * steps_per_epoch)), 1)
  eval_every_steps = max(int(round(eval_every_epochs * steps_per_epoch)), 1)

  trainer = Trainer(model, objective, strategy, total_steps, steps_per_epoch, seed,
                    jit_compile=jit_compile,
                    max_consecutive_bad_steps=max_consecutive_bad_steps,
                    mixed_precision=mixed_precision, loss_scale=loss_scale)
  vae, optimizer, step = trainer.vae, trainer.optimizer, trainer.step
  checkpoint = tf.train.Checkpoint(model=vae, optimizer=optimizer, step=step)
  manager = tf.train.CheckpointManager(checkpoint, model_dir, max_to_keep=3)
  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    logging.info('Resumed from %s at step %d.', manager.latest_checkpoint, int(step))
  start_step = int(step)
  metrics = MetricsLog(os.path.join(model_dir, 'metrics.jsonl'), start_step)
  truncate_event_files(model_dir, start_step)
  writer = tf.summary.create_file_writer(model_dir)
  iterator = trainer.distribute(data.train_dataset(train_images, batch_size, seed, start_step))
  evaluate = make_evaluate(vae, eval_batch_size, seed + 1)

  def run_eval(current_step, save):
    results = {}
    epoch = current_step / steps_per_epoch
    beta = float(objectives.beta_schedule(epoch))
    for split, images in eval_images.items():
      result = evaluate(images)
      results[split] = result
      metrics.append(dict(step=current_step, epoch=epoch, split=split, beta=beta,
                          num_examples=int(images.shape[0]), **result))
      with writer.as_default(step=current_step):
        for name, value in result.items():
          tf.summary.scalar(f'eval/{split}/{name}', value)
      logging.info('eval step %d %s: rate %.3f distortion %.3f elbo %.3f', current_step,
                   split, result['rate'], result['distortion'], result['elbo'])
    _image_summaries(vae, eval_images[eval_splits[-1]][:summary_images], current_step,
                     writer, seed)
    if save:
      manager.save(checkpoint_number=current_step)
    return results

  logging.info('Training %d steps (%d per epoch, batch %d, %d replica(s)) in %s.',
               total_steps, steps_per_epoch, batch_size, strategy.num_replicas_in_sync,
               model_dir)
  current = start_step
  results = {}
  start_time, start_at = time.time(), current
  while current < total_steps:
    num_steps = min(log_every_steps, total_steps - current,
                    eval_every_steps - current % eval_every_steps)
    means, good, bad_run, grad_norm, beta = trainer.train_steps(iterator,
                                                                tf.constant(num_steps))
    current = int(step)
    if int(bad_run) >= max_consecutive_bad_steps:
      raise cli.UserError(
          f'training stopped at step {current}: {int(bad_run)} consecutive steps with a '
          f'non-finite loss or gradient; the last good checkpoint is kept in {model_dir}')
    loss, rate, distortion = (float(v) for v in means)
    elapsed = time.time() - start_time
    rate_per_s = (current - start_at) * batch_size / max(elapsed, 1e-9)
    eta = (total_steps - current) * batch_size / max(rate_per_s, 1e-9)
    logging.info('step %d/%d epoch %.2f loss %.3f rate %.3f distortion %.3f beta %.3f | '
                 '%.0f images/s | %s left', current, total_steps, current / steps_per_epoch,
                 loss, rate, distortion, float(beta), rate_per_s, _format_duration(eta))
    with writer.as_default(step=current):
      tf.summary.scalar('train/loss', loss)
      tf.summary.scalar('train/rate', rate)
      tf.summary.scalar('train/distortion', distortion)
      tf.summary.scalar('train/elbo', -(rate + distortion))
      tf.summary.scalar('train/beta', float(beta))
      tf.summary.scalar('train/learning_rate', float(optimizer.learning_rate))
      tf.summary.scalar('train/grad_norm', float(grad_norm))
      tf.summary.scalar('train/images_per_second', rate_per_s)
    if current == num_steps + start_step and start_step == 0:
      files.write_atomic(os.path.join(model_dir, 'operative_config.gin'),
                    gin.operative_config_str())
    # No checkpoint right after a non-finite step: the last one stays the last good state.
    all_good = int(good) == num_steps
    if current % eval_every_steps == 0 or current == total_steps:
      results = run_eval(current, save=all_good)
    elif current % checkpoint_every_steps < num_steps and all_good:
      manager.save(checkpoint_number=current)
  if not results:  # Resumed after the last step: evaluate again for the caller.
    results = {split: evaluate(images) for split, images in eval_images.items()}
  writer.flush()
  return results


@tf.function
def _reconstruct_and_generate(vae, x, seed):
  _, recon = vae.reconstruct(x, seed)
  _, samples = vae.generate(tf.shape(x)[0], seed)
  return recon, samples


def _image_summaries(vae, x, current_step, writer, seed):
  """TensorBoard images: inputs, reconstructions x' ~ d(x|z), z ~ e(z|x); samples."""
  if x.shape[0] == 0:
    return
  x = tf.cast(x, tf.float32)
  seed = step_seed(seed + 2, current_step)
  recon, samples = _reconstruct_and_generate(vae, x, seed)
  with writer.as_default(step=current_step):
    tf.summary.image('images/input_then_reconstruction',
                     tf.concat([x, recon], axis=2), max_outputs=x.shape[0])
    tf.summary.image('images/samples', samples, max_outputs=x.shape[0])
