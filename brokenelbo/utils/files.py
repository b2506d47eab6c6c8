"""Files a tool writes: crash-safe writes that leave no debris, strict JSON, writable folders.

A file written by `write_atomic` is either its old content or its new content, never cut;
a write that fails (a full disk) removes its temporary file. JSON is strict (RFC 8259): a
value that is not a finite number is written as `null`, never as `NaN`.
"""

import errno
import json
import math
import os

import tensorflow as tf

from brokenelbo.utils import cli


def _os_error(error, path):
  """`error` (a TensorFlow file-system error or an `OSError`) as an `OSError` on `path`."""
  if isinstance(error, OSError):
    return error
  message = ' '.join(str(getattr(error, 'message', error)).split())
  code = errno.ENOSPC if 'No space left' in message else errno.EIO
  return OSError(code, message, path)


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
      tf.io.gfile.makedirs(folder)
    with tf.io.gfile.GFile(tmp, 'wb' if isinstance(text, bytes) else 'w') as f:
      f.write(text)
    tf.io.gfile.rename(tmp, path, overwrite=True)
  except (OSError, tf.errors.OpError) as e:
    try:
      if tf.io.gfile.exists(tmp):
        tf.io.gfile.remove(tmp)
    except tf.errors.OpError:
      pass  # The folder itself is gone or unreadable; nothing was left in it.
    raise _os_error(e, path) from None


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
  except (OSError, tf.errors.OpError) as e:
    error = _os_error(e, path)
    reason = error.strerror or str(error)
    raise cli.UserError(f'{what} {path} is not writable: {reason}') from None
