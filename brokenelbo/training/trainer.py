"""The root configurable `train`: a training run from set-up to its record.

  strategy (first: `distributed.make_strategy`); the loss's settings checked (`losses`);
  data, checked, and whether the model fits it; the attempt: `model_dir`
  (`run_dir.worker_dir`), its lock, its failure record, lost workers
  (`distributed.lost_worker_fails`), SIGTERM (`preemption`), the config
  checked against the run's and written, the previous `run.json` removed; seeds; the
  compiled step (`step.Trainer`); restore, the loop and its periodic actions
  (`loop.train_and_evaluate`); the check of the result; `run.json` (`run_record`).

A run is fully determined by its step counter (`step`): resuming it from a checkpoint gives
the same metrics as running it straight through. A step whose loss or gradient is not finite
is not applied; a run that never applied one, or whose final evaluation is not finite, fails
(`errors.RunFailed`), and so does one after `max_consecutive_bad_steps` bad steps in a row.
What a step minimises is a configurable, `train.loss` (see `losses`), whose own settings are
bound to it (`rate_distortion_loss.objective`); the optimizer is `train.optimizer`.
"""

import contextlib
import math

import gin
import tensorflow as tf
import tf_keras

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.data import images
from brokenelbo.data.mnist import static_mnist  # pylint: disable=g-importing-member
from brokenelbo.models import vae as vae_lib
from brokenelbo.training import distributed
from brokenelbo.training import loop
from brokenelbo.training import losses
from brokenelbo.training import optimizers
from brokenelbo.training import preemption
from brokenelbo.training import run_dir
from brokenelbo.training import run_record
from brokenelbo.training import step as step_lib
from brokenelbo.training import summaries

def _load_data(dataset, max_train_examples, eval_splits, max_eval_examples, batch_size):
  """The training examples and `{split: examples}` to evaluate; bad input raises first.

  Training draws from `dataset.training_images()` where the data set has it (its grey
  levels, binarized afresh at every step: `pipeline.DynamicBinarization`), else from
  `dataset('train')`. Every split is checked (`images.check_examples`): not empty, finite,
  images in [0, 1].
  """
  training_images = getattr(dataset, 'training_images', None)
  train_images = (training_images() if training_images is not None
                  else dataset('train'))[:max_train_examples]
  eval_images = {split: dataset(split)[:max_eval_examples] for split in eval_splits}
  name = getattr(dataset, '__name__', None) or repr(dataset)
  for split, examples in (('train', train_images), *eval_images.items()):
    images.check_examples(examples, f'the {split} split of {name}')
  if train_images.shape[0] // batch_size < 1:
    raise errors.UserError(f'batch_size {batch_size} exceeds the {train_images.shape[0]} '
                           'training examples')
  return train_images, eval_images


def _check_model_fits(model, example_shape):
  """For images (`[H, W, C]`), builds the model once and asks each part that can say
  (`check_image_shape`: the encoder, decoder and marginal of `vae.VAE`) whether it models
  them: a misfit is one line naming the binding to change, before anything is written."""
  if len(example_shape) != 3:
    return  # Vectors (the LiBI data sets): no image shape to fit.
  probe = model()
  for part in ('encoder', 'decoder', 'marginal'):
    check = getattr(getattr(probe, part, None), 'check_image_shape', None)
    if check is not None:
      check(tuple(int(size) for size in example_shape))


@contextlib.contextmanager
def _attempt(model_dir, strategy, config_text, overwrite):
  """Within the block, an attempt at the run: yields (the folder this process writes,
  `run_dir.worker_dir`; the `preemption.StopOnSigterm`). The folder is locked, a
  `RunFailed` is recorded in it, a lost worker is a `RunFailed`, the config is checked
  against the run's and written (`run_dir.check_model_dir`), and `run.json` is removed."""
  with contextlib.ExitStack() as stack:
    write_dir = stack.enter_context(run_dir.worker_dir(model_dir, strategy))
    stack.enter_context(run_dir.RunLock(write_dir))
    stack.enter_context(run_dir.failure_record(write_dir))
    stack.enter_context(distributed.lost_worker_fails(model_dir))
    stop = stack.enter_context(preemption.StopOnSigterm())
    run_dir.check_model_dir(write_dir, config_text, overwrite)
    run_record.remove_run_record(write_dir)
    yield write_dir, stop


def _seed(seed, deterministic):
  """Seeds Python, NumPy and TensorFlow (the model's initial parameters); with
  `deterministic`, TensorFlow's ops are deterministic: the same seed, the same metrics."""
  tf_keras.utils.set_random_seed(seed)
  if deterministic:
    tf.config.experimental.enable_op_determinism()


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


def _write_run_record(write_dir, outcome, steps_per_epoch, config_text, hparams):
  """`run.json`: the final step and epoch, each split's final record of `metrics.jsonl`
  (all but its step, epoch and split), and the run's hyper-parameters."""
  final = {record['split']: {k: v for k, v in record.items()
                             if k not in ('step', 'epoch', 'split')}
           for record in outcome.records}
  run_record.write_run_record(write_dir, outcome.step, outcome.step / steps_per_epoch, final,
                              config_text, hparams)


@gin.configurable(denylist=['model_dir', 'overwrite'])
@domains.checked(
    batch_size=domains.POSITIVE_INT, epochs=domains.POSITIVE,
    max_train_examples=domains.optional(domains.POSITIVE_INT),
    eval_every_epochs=domains.POSITIVE,
    eval_splits=domains.tuple_of(domains.one_of('train', 'validation', 'test')),
    eval_batch_size=domains.POSITIVE_INT,
    max_eval_examples=domains.optional(domains.POSITIVE_INT),
    log_every_steps=domains.POSITIVE_INT, checkpoint_every_steps=domains.POSITIVE_INT,
    max_consecutive_bad_steps=domains.POSITIVE_INT, summary_images=domains.NON_NEGATIVE_INT,
    jit_compile=domains.BOOL,
    mixed_precision=domains.one_of(None, 'mixed_float16', 'mixed_bfloat16'),
    loss_scale=domains.POSITIVE, normalize_gradients=domains.BOOL,
    deterministic=domains.BOOL, seed=domains.SEED)
def train(model_dir,                              # Where the run writes everything (a flag).
          overwrite=False,                        # Start afresh: remove a run's files (a flag).
          model=vae_lib.VAE,                      # () -> the model (`@VAE`, `@SyntheticVAE`).
          loss=losses.rate_distortion_loss,       # What a step minimises (`losses`).
          optimizer=optimizers.normalized_adam,   # (total_steps=) -> tf_keras optimizer (App. F).
          dataset=static_mnist,                   # dataset(split) -> examples [N, ...].
          batch_size=100,                         # The global batch; not stated in the paper.
          epochs=200.,                            # Training length; paper: 100 + 100.
          max_train_examples=None,                # Train on the first examples only (smoke runs).
          eval_every_epochs=10.,                  # Evaluation interval; always one at the end.
          eval_splits=('train', 'test'),          # The splits of each evaluation.
          eval_batch_size=500,                    # Examples per batch of an evaluation.
          max_eval_examples=None,                 # Evaluate on the first examples only.
          log_every_steps=100,                    # Steps per compiled call, progress, summaries.
          checkpoint_every_steps=5000,            # Checkpoint interval; also at every evaluation.
          max_consecutive_bad_steps=10,           # Non-finite steps in a row before the run fails.
          summary_images=8,                       # Reconstructions and samples in TensorBoard.
          strategy=None,                          # () -> a tf.distribute strategy (`distributed`).
          jit_compile=False,                      # Compile the step with XLA.
          mixed_precision=None,                   # 'mixed_float16' or 'mixed_bfloat16' (`step`).
          loss_scale=1.,                          # Static loss scale for float16 (e.g. 1024.).
          normalize_gradients=True,               # g_v / ||g_v|| before the optimizer (App. F).
          deterministic=True,                     # Op determinism: same seed, same metrics.
          seed=0):                                # Parameters, data order, every z sample.
  """Trains a model and evaluates it; the root configurable of a training run.

  Returns the final evaluation, `{split: {rate, distortion, elbo, ...}}`. Raises `UserError`
  for bad input or a `model_dir` that another process holds; `RunFailed` if the run diverged
  (no step applied, `max_consecutive_bad_steps` bad steps in a row, a final evaluation that
  is not finite), no checkpoint reads back, a save failed or a worker of the cluster
  stopped; `Preempted` after SIGTERM, at a step boundary, after a checkpoint.
  """
  # Bad input (a negative beta, missing or bad data, a network that does not fit the
  # images, an unwritable or busy model_dir) is reported before anything is written.
  strategy = distributed.make_strategy(strategy)  # Before any other TensorFlow op.
  losses.metrics_at(loss, 0.)
  train_images, eval_images = _load_data(dataset, max_train_examples, eval_splits,
                                         max_eval_examples, batch_size)
  _check_model_fits(model, train_images.shape[1:])
  schedule = loop.Schedule.from_epochs(train_images.shape[0] // batch_size, epochs,
                                       eval_every_epochs, log_every_steps,
                                       checkpoint_every_steps)
  config_text = gin.config_str()
  with _attempt(model_dir, strategy, config_text, overwrite) as (write_dir, stop):
    _seed(seed, deterministic)
    trainer = step_lib.Trainer(
        model, loss, strategy, schedule.total_steps, schedule.steps_per_epoch, seed,
        optimizer=optimizer, jit_compile=jit_compile,
        max_consecutive_bad_steps=max_consecutive_bad_steps, mixed_precision=mixed_precision,
        loss_scale=loss_scale, example_shape=train_images.shape[1:],
        normalize=normalize_gradients)
    stop.attach(trainer.stop_requested)
    hparams = summaries.run_hparams(getattr(trainer.vae, 'family', '???'), dataset, epochs,
                                    batch_size, seed)  # A user's own model may not say.
    outcome = loop.train_and_evaluate(trainer, schedule, train_images, eval_images,
                                      model_dir, write_dir, batch_size, eval_batch_size,
                                      summary_images, hparams)
    _check_result(outcome.results, outcome.start_step, outcome.applied, model_dir)
    _write_run_record(write_dir, outcome, schedule.steps_per_epoch, config_text, hparams)
  return outcome.results
