"""Files a tool writes: crash-safe writes that leave no debris, strict JSON, writable folders;
and the file that makes a folder a run (`run_config`).

A file written by `write_atomic` is either its old content or its new content, never cut;
a write that fails (a full disk) removes its temporary file. JSON is strict (RFC 8259): a
value that is not a finite number is written as `null`, never as `NaN`. The module does not
import TensorFlow, so that a command line can check its output folders and input runs in a
second, before TensorFlow loads (`check_can_create_dir`, `run_config`).
"""

import errno
import json
import math
import os

from brokenelbo import errors


def write_atomic(path, text):
  """Writes `text` (`str` or `bytes`) to `path` through a temporary file and a rename;
  makes the folder.

  Raises:
    OSError: if the write fails; the temporary file is removed and `path` is unchanged.
  """
  folder = os.path.dirname(path)
  tmp = path + '.tmp'
  try:
    if folder:
      os.makedirs(folder, exist_ok=True)
    with open(tmp, 'wb' if isinstance(text, bytes) else 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError:
    try:
      os.remove(tmp)
    except OSError:
      pass  # Never written, or the folder itself is gone or unreadable.
    raise


def _finite_or_none(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite_or_none(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_or_none(v) for v in value]
  return value


def to_json(value, **kwargs):
  """`json.dumps(value, **kwargs)` in strict JSON: non-finite floats become `null`."""
  return json.dumps(_finite_or_none(value), allow_nan=False, **kwargs)


def run_config(model_dir):
  """The path of `model_dir/config.gin`, the file that makes a folder a run.

  Raises:
    UserError: if there is none.
  """
  path = os.path.join(model_dir, 'config.gin')
  if not os.path.isfile(path):
    raise errors.UserError(f'{model_dir} holds no run (no config.gin)')
  return path


def check_writable_dir(path, what):
  """Creates the folder `path` if needed and checks that a file can be written in it.

  Raises:
    UserError: naming `what` (e.g. '--output_dir') if `path` is a file, is under a file, is
      on a read-only or full file system, or is not writable; the probe file never stays.
  """
  probe = os.path.join(path, '.write_test')
  try:
    if os.path.exists(path) and not os.path.isdir(path):
      raise OSError(errno.ENOTDIR, 'not a directory', path)
    os.makedirs(path, exist_ok=True)
    try:
      with open(probe, 'w') as f:
        f.write('ok')
    finally:
      if os.path.exists(probe):
        os.remove(probe)
  except OSError as e:
    raise errors.UserError(f'{what} {path} is not writable: {e.strerror or e}') from None


def check_can_create_dir(path, what):
  """Checks, creating nothing, that the folder `path` exists and is writable or can be made.

  The nearest existing folder on the way to `path` must be a folder that this user may
  write in (`os.access`, which also reports a read-only mount). A command line calls this
  before loading TensorFlow, so that a mistyped output path fails in a second; a full disk
  shows only when something is written (`check_writable_dir`, `write_atomic`).

  Raises:
    UserError: naming `what`, if `path` or a folder on its way is a file, or the nearest
      existing one is not writable.
  """
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    reason = os.strerror(errno.ENOTDIR)
  elif not os.access(existing, os.W_OK | os.X_OK):
    reason = os.strerror(errno.EROFS if _read_only_mount(existing) else errno.EACCES)
  else:
    return
  raise errors.UserError(f'{what} {path} is not writable: {reason}')


def _read_only_mount(folder):
  try:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
  except OSError:
    return False
