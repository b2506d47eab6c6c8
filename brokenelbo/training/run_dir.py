"""A run's directory: what it holds, the check before writing to it, its metrics log.

`model_dir` holds `config.gin` (the config as parsed), `operative_config.gin` (after the
first steps), TensorBoard event files, checkpoints (`checkpoint`, `ckpt-*`) and
`metrics.jsonl` (one JSON object per split per evaluation, nats per example over the whole
split). A resumed run drops the metrics and events past its checkpoint, since it computes
those steps again.
"""

import json
import os

import tensorflow as tf

from brokenelbo.utils import cli
from brokenelbo.utils import files


# What a run writes in its model_dir: the only files `--overwrite` removes.
RUN_FILES = ('config.gin', 'operative_config.gin', 'metrics.jsonl', 'checkpoint', 'ckpt-*',
             'events.out.tfevents.*', '*.tmp')


def check_model_dir(model_dir, config_str, overwrite):
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
