"""A run's directory: what it holds, its lock, the check before writing to it, its metrics.

`model_dir` holds `config.gin` (the config as parsed), `operative_config.gin` (after the
first steps), TensorBoard event files, checkpoints (`checkpoint`, `ckpt-*`; see
`checkpoints`), `metrics.jsonl` (one strict-JSON object per split per evaluation, nats
per example over the whole split) and, once finished, `run.json` (`run_record`). A
resumed run drops the metrics and events past its checkpoint, since it computes those steps
again. While a process writes to the run it holds `.lock` (`RunLock`): a second writer is
refused. An attempt that failed leaves `failed.json` (`failure_record`).

A run spread over the workers of a cluster (`tf.distribute.MultiWorkerMirroredStrategy`)
has one writer of `model_dir`, its chief (`is_chief`); every other worker writes the same
files into a private temporary folder, removed when it ends (`worker_dir`).
"""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time

from absl import logging
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.training import run_record
from brokenelbo.utils import files
from brokenelbo.utils import locks


# What a run writes in its model_dir: the only files `--overwrite` removes.
RUN_FILES = ('config.gin', 'operative_config.gin', 'metrics.jsonl', 'checkpoint', 'ckpt-*',
             'events.out.tfevents.*', '*.tmp', 'failed.json', run_record.RUN_RECORD,
             run_record.EVALUATION_RECORD)
LOCK_FILE = '.lock'
# Written when an attempt fails (`errors.RunFailed`), removed when the next attempt starts: a
# run whose metrics look final but whose training failed is not taken for finished.
FAILURE_FILE = 'failed.json'


def is_chief(strategy):
  """Whether this process writes the run directory: always under a single-process strategy;
  under a multi-worker one, if its task is 'chief', or 'worker' 0 in a cluster without a
  'chief' task (TensorFlow's convention, `strategy.cluster_resolver`)."""
  resolver = strategy.cluster_resolver
  if resolver is None or resolver.task_type is None:  # No cluster: one process.
    return True
  if resolver.task_type == 'chief':
    return True
  return (resolver.task_type == 'worker' and resolver.task_id == 0
          and 'chief' not in resolver.cluster_spec().jobs)


@contextlib.contextmanager
def worker_dir(model_dir, strategy):
  """Within the block, the folder this process writes the run into; yields its path.

  The chief (`is_chief`) writes `model_dir`. Under a multi-worker strategy every worker runs
  the whole program, since each takes part in every collective operation, saving
  checkpoints included; so a worker that is not the chief writes what the chief writes
  (checkpoints, summaries, metrics) into a folder of its own, on its own host, which is
  emptied on entry (a worker killed earlier) and removed on exit. This is TensorFlow's
  pattern for multi-worker checkpoints
  (https://www.tensorflow.org/tutorials/distribute/multi_worker_with_ctl). Such a worker
  resumes from the chief's checkpoint in `model_dir`, which must therefore be on a file
  system that every worker reads.

  Raises (on entering):
    UserError: if the folder cannot be written (`model_dir`, for the chief).
  """
  if is_chief(strategy):
    files.check_writable_dir(model_dir, 'model_dir')
    yield model_dir
    return
  resolver = strategy.cluster_resolver
  digest = hashlib.sha256(os.path.abspath(model_dir).encode()).hexdigest()[:12]
  path = os.path.join(tempfile.gettempdir(),
                      f'brokenelbo-{resolver.task_type}-{resolver.task_id}-{digest}')
  shutil.rmtree(path, ignore_errors=True)
  files.check_writable_dir(path, f'the temporary folder of {resolver.task_type} '
                           f'{resolver.task_id}')
  logging.info('%s %d is not the chief: it writes its share of the run in %s (removed at the '
               'end) and resumes from the checkpoints in %s.', resolver.task_type,
               resolver.task_id, path, model_dir)
  try:
    yield path
  finally:
    shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def failure_record(model_dir):
  """Within the block, a `errors.RunFailed` is recorded in `model_dir/failed.json` (its
  message and the time) before it propagates. (`check_model_dir` removes the record of an
  earlier attempt.)"""
  path = os.path.join(model_dir, FAILURE_FILE)
  try:
    yield
  except errors.RunFailed as e:
    try:
      files.write_atomic(path, files.to_json(dict(error=str(e).splitlines()[0],
                                                  time=time.strftime('%Y-%m-%d %H:%M:%S')),
                                             indent=2) + '\n')
    except OSError:
      pass  # A full disk: the error itself still reaches the user.
    raise


class RunLock:
  """An exclusive lock on a run directory, held while a process writes to it.

  The lock is `utils.locks` on `model_dir/.lock`, which holds the holder's PID; a lock
  left by a dead process is simply taken.

  Raises (on entering):
    UserError: if another process holds the lock (naming its PID).
  """

  def __init__(self, model_dir):
    self.path = os.path.join(model_dir, LOCK_FILE)
    self._fd = None

  def __enter__(self):
    fd = locks.acquire(self.path, blocking=False)
    if fd is None:
      raise errors.UserError(f'{os.path.dirname(self.path)} is in use by process '
                             f'{self._holder()} (it holds {self.path}); wait for it to end, '
                             'or choose another --model_dir')
    os.ftruncate(fd, 0)
    os.write(fd, f'{os.getpid()}\n'.encode())
    self._fd = fd
    return self

  def _holder(self):
    try:
      with open(self.path) as f:
        return f.read().strip() or 'unknown'
    except OSError:
      return 'unknown'

  def __exit__(self, *exc_info):
    locks.release(self.path, self._fd)
    self._fd = None


def check_model_dir(model_dir, config_str, overwrite):
  """Creates `model_dir`, or checks that it holds a run of the same config.

  A directory holding a run of another config, or files that are not a run's, is refused
  unless `overwrite`, which starts afresh: it removes only the files a run writes
  (`RUN_FILES`), never anything else in the directory. The caller holds the `RunLock`.
  """
  config_path = os.path.join(model_dir, 'config.gin')
  if tf.io.gfile.exists(config_path):
    with tf.io.gfile.GFile(config_path) as f:
      same = f.read() == config_str
    reason = None if same else 'holds a run with a different config'
  else:
    others = set(tf.io.gfile.listdir(model_dir)) - {LOCK_FILE}
    reason = 'is not empty and holds no run' if others else None
  if reason and not overwrite:
    raise errors.UserError(f'{model_dir} {reason}; pass --overwrite to start afresh there '
                           '(only the files of a run are removed), or choose another '
                           '--model_dir')
  if overwrite:
    for pattern in RUN_FILES:
      for path in tf.io.gfile.glob(os.path.join(model_dir, pattern)):
        tf.io.gfile.remove(path)
  failure = os.path.join(model_dir, FAILURE_FILE)
  if tf.io.gfile.exists(failure):  # A new attempt.
    tf.io.gfile.remove(failure)
  files.write_atomic(config_path, config_str)


class MetricsLog:
  """`metrics.jsonl`: one strict-JSON object per line (a non-finite value is `null`); lines
  past a resumed step are dropped, a line cut by a crash is skipped, and a whole line that
  is not a record with an integer `step` is a `UserError` naming the file and line."""

  def __init__(self, path, resume_step):
    self.path = path
    self.records = []
    if tf.io.gfile.exists(path):
      with tf.io.gfile.GFile(path) as f:
        for number, line in enumerate(f, 1):
          try:
            record = json.loads(line)
          except json.JSONDecodeError:
            continue  # A line cut by a crash: it is recomputed.
          step = record.get('step') if isinstance(record, dict) else None
          if not isinstance(step, int) or isinstance(step, bool):
            raise errors.UserError(f'{path}: line {number} is not a metrics record (no '
                                   'integer "step"); move the file away to resume without it')
          if step <= resume_step:
            self.records.append(record)
    self._flush()

  def append(self, record):
    self.records.append(record)
    self._flush()

  def _flush(self):
    files.write_atomic(self.path, ''.join(files.to_json(r) + '\n' for r in self.records))


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
