"""A run's checkpoints: restore the newest one that reads back, save without leaving debris.

A checkpoint `ckpt-N` is the pair `ckpt-N.index`, `ckpt-N.data-*` (N is the step); the
`checkpoint` file indexes them for TensorFlow. Both can be damaged on disk (a crash, a full
or failing disk, a copy cut short), so the files present, not the index, say which
checkpoints exist: restoring tries them newest first, and one that does not read back is
reported in one line, moved into `damaged/` (never deleted) when the caller owns the run,
and the previous one is tried. A missing, unreadable or stale index is rewritten from the
checkpoints present.

A save that fails (no space left on the device) removes what it had written, so that the
run can resume from its last good checkpoint once space is freed.
"""

import os
import re

from absl import logging
import tensorflow as tf

from brokenelbo import errors

INDEX_FILE = 'checkpoint'
DAMAGED_DIR = 'damaged'
_CHECKPOINT_INDEX = re.compile(r'^ckpt-(\d+)\.index$')
# What a checkpoint that does not read back raises: a short or missing file (IndexError,
# NotFoundError), a checksum mismatch (DataLossError), a garbled index (ValueError).
_READ_ERRORS = (tf.errors.OpError, IndexError, ValueError, UnicodeDecodeError, OSError)


def checkpoint_steps(model_dir):
  """The steps N of the `ckpt-N` present in `model_dir`, newest first."""
  names = tf.io.gfile.listdir(model_dir) if tf.io.gfile.isdir(model_dir) else []
  return sorted((int(m.group(1)) for m in map(_CHECKPOINT_INDEX.match, names) if m),
                reverse=True)


def _prefix(model_dir, step):
  return os.path.join(model_dir, f'ckpt-{step}')


def _indexed_paths(model_dir):
  """The checkpoint paths the `checkpoint` file lists (newest last), or `None` if it is
  missing or does not parse."""
  try:
    state = tf.train.get_checkpoint_state(model_dir)
  except _READ_ERRORS:
    return None
  if state is None:
    return None
  return [os.path.join(model_dir, os.path.basename(p))
          for p in state.all_model_checkpoint_paths]


def rebuild_index(model_dir):
  """Rewrites the `checkpoint` file from the checkpoints present, if it disagrees with them.

  Returns the path of the newest checkpoint present, or `None`.
  """
  names = [f'ckpt-{step}' for step in reversed(checkpoint_steps(model_dir))]
  paths = [os.path.join(model_dir, name) for name in names]
  if _indexed_paths(model_dir) == paths and paths:
    return paths[-1]
  index = os.path.join(model_dir, INDEX_FILE)
  if not paths:
    if tf.io.gfile.exists(index):
      tf.io.gfile.remove(index)
    return None
  logging.info('Rewrote %s from the checkpoints present: %s', index, ', '.join(names))
  # Names relative to model_dir and save times, as `tf.train.CheckpointManager` writes
  # them: with the times, its `max_to_keep` keeps counting these checkpoints.
  times = [tf.io.gfile.stat(p + '.index').mtime_nsec / 1e9 for p in paths]
  tf.compat.v1.train.update_checkpoint_state(
      model_dir, names[-1], all_model_checkpoint_paths=names,
      all_model_checkpoint_timestamps=times, last_preserved_timestamp=min(times) - 1.)
  return paths[-1]


def _set_aside(model_dir, step):
  """Moves the files of `ckpt-step` into `model_dir/damaged/`, under a name not taken."""
  damaged = os.path.join(model_dir, DAMAGED_DIR)
  tf.io.gfile.makedirs(damaged)
  suffix, attempt = '', 1
  names = [n for n in tf.io.gfile.listdir(model_dir) if n.startswith(f'ckpt-{step}.')]
  while any(tf.io.gfile.exists(os.path.join(damaged, n + suffix)) for n in names):
    attempt += 1
    suffix = f'.{attempt}'
  for name in names:
    tf.io.gfile.rename(os.path.join(model_dir, name), os.path.join(damaged, name + suffix))
  return damaged


def restore_newest(objects, model_dir, owner=True, partial=False):
  """Restores into `objects` the newest checkpoint of `model_dir` that reads back.

  Args:
    objects: `dict` of the trackables to restore, as given to `tf.train.Checkpoint`
      (`model=..., optimizer=..., step=...`); their variables exist already. Each attempt
      uses a new `tf.train.Checkpoint`, since a failed restore leaves its object unusable.
    model_dir: Python `str`, the run directory.
    owner: Python `bool`, the caller writes to the run (training): damaged checkpoints are
      moved into `damaged/`, the index is rewritten, the temporary folder of a save that was
      killed is removed. A reader (evaluation) only skips damaged checkpoints.
    partial: Python `bool`, the checkpoint may hold objects that `objects` lacks (the
      optimizer, when only the model is restored).

  Returns:
    The restored checkpoint's path, or `None` if `model_dir` holds none.

  Raises:
    RunFailed: if checkpoints are present but none reads back.
  """
  if owner:  # What a save killed midway left (SIGKILL, a full disk) goes first.
    for path in tf.io.gfile.glob(os.path.join(model_dir, 'ckpt-*_temp*')):
      if tf.io.gfile.isdir(path):
        tf.io.gfile.rmtree(path)
      else:
        tf.io.gfile.remove(path)
  steps = checkpoint_steps(model_dir)
  if owner:
    rebuild_index(model_dir)
  for step in steps:
    path = _prefix(model_dir, step)
    try:
      _restore(objects, path, partial)
      return path
    except _READ_ERRORS as e:
      reason = _reason(e)
      if owner:
        where = _set_aside(model_dir, step)
        logging.warning('Checkpoint %s does not read back (%s); moved it to %s and use the '
                        'previous one.', path, reason, where)
        rebuild_index(model_dir)
      else:
        logging.warning('Checkpoint %s does not read back (%s); using the previous one.',
                        path, reason)
  if steps:
    where = (f'moved to {os.path.join(model_dir, DAMAGED_DIR)}; rerun to start from step 0'
             if owner else 'rerun training to repair the run')
    raise errors.RunFailed(f'no checkpoint of {model_dir} reads back '
                           f'({", ".join(f"ckpt-{s}" for s in steps)}; {where})')
  return None


def restore_step(objects, model_dir, step):
  """Restores `ckpt-step` of `model_dir` into `objects` (as in `restore_newest`), reading only.

  Under a multi-worker strategy, the workers that are not the chief resume from the
  checkpoint that the chief chose.

  Returns:
    The checkpoint's path.

  Raises:
    RunFailed: if it does not read back (`model_dir` is not on a file system this process
      sees, or the checkpoint changed since the chief read it).
  """
  path = _prefix(model_dir, step)
  try:
    _restore(objects, path, partial=False)
  except _READ_ERRORS as e:
    raise errors.RunFailed(f'checkpoint {path}, which the chief resumed from, does not read '
                           f'back here ({_reason(e)}); every worker must see {model_dir} on a '
                           'shared file system') from None
  return path


def _restore(objects, path, partial):
  """Restores checkpoint `path` into `objects`, through a new `tf.train.Checkpoint`."""
  status = tf.train.Checkpoint(**objects).restore(path)
  if partial:
    status = status.expect_partial()
  status.assert_existing_objects_matched()


def _reason(error):
  """A short reason for a TensorFlow or OS error, without TensorFlow's op names."""
  message = ' '.join(str(getattr(error, 'message', None) or error).split())
  if 'No space left on device' in message:
    return 'no space left on device'
  message = re.sub(r'\{\{[^}]*\}\}\s*', '', message)
  return message[:200] or type(error).__name__


def _remove_partial_save(model_dir, step):
  """Removes what an interrupted save of `ckpt-step` left: its temporary folder, its files,
  a temporary index."""
  for pattern in (f'ckpt-{step}_temp*', f'ckpt-{step}.*', f'{INDEX_FILE}.tmp*'):
    for path in tf.io.gfile.glob(os.path.join(model_dir, pattern)):
      try:
        if tf.io.gfile.isdir(path):
          tf.io.gfile.rmtree(path)
        else:
          tf.io.gfile.remove(path)
      except tf.errors.OpError:
        pass  # Already gone.


def save(manager, step):
  """`manager.save(checkpoint_number=step)`; a failed save leaves nothing behind.

  Raises:
    RunFailed: if the save fails (no space left on the device, an I/O error); the previous
      checkpoints stay as they were.
  """
  try:
    return manager.save(checkpoint_number=step)
  except (tf.errors.OpError, OSError) as e:
    _remove_partial_save(manager.directory, step)
    rebuild_index(manager.directory)
    raise errors.RunFailed(f'could not save checkpoint ckpt-{step} in {manager.directory} '
                           f'({_reason(e)}); nothing of it was kept: free space and rerun the '
                           'same command to continue from the last checkpoint') from None
