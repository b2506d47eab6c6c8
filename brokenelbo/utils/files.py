"""Crash-safe file writes: a file is either its old content or its new content, never cut."""

import os

import tensorflow as tf


def write_atomic(path, text):
  """Writes `text` (`str` or `bytes`) to `path` through a temporary file and a rename;
  makes the folder."""
  folder = os.path.dirname(path)
  if folder:
    tf.io.gfile.makedirs(folder)
  tmp = path + '.tmp'
  with tf.io.gfile.GFile(tmp, 'wb' if isinstance(text, bytes) else 'w') as f:
    f.write(text)
  tf.io.gfile.rename(tmp, path, overwrite=True)
