"""Input pipelines: image arrays to `tf.data` batches of `float32`.

`make_dataset` batches an array as it is (evaluation); `train_dataset` gives a run's
infinite training stream, which draws every batch afresh from grey levels when given a
`DynamicBinarization` (`images.ImageFile(binarization='dynamic')`).
"""

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo import errors

# Folded into (seed, step) for the seed of a step's dynamic binarization, so that its
# uniforms are not those of any other stateless draw of the run.
_BINARIZATION_SALT = 0x62696e  # 'bin'


class DynamicBinarization:
  """Training images that are binarized afresh at every step: grey levels p in [0, 1] of
  which `train_dataset` draws each batch x ~ Bernoulli(p).

  It stands for a training split where an array would (`dataset.training_images()`),
  with its `shape` and slices (`images[:n]`, the first n images).

  Args:
    probabilities: `np.ndarray` `[N, ...]` of grey levels in [0, 1].
  """

  def __init__(self, probabilities):
    self.probabilities = np.asarray(probabilities, np.float32)

  @property
  def shape(self):
    return self.probabilities.shape

  def __len__(self):
    return len(self.probabilities)

  def __getitem__(self, index):
    return DynamicBinarization(self.probabilities[index])


def bernoulli_draw(probabilities, seed):
  """x ~ Bernoulli(p) in `float32`: 1 where a stateless uniform u in [0, 1) is below p (so
  p = 0 gives 0, p = 1 gives 1), u drawn from `seed` (`int64` `Tensor` `[2]`)."""
  uniforms = tf.random.stateless_uniform(tf.shape(probabilities), seed=seed)
  return tf.cast(uniforms < probabilities, tf.float32)


@gin.configurable
@domains.checked(batch_size=domains.POSITIVE_INT, shuffle=domains.BOOL, repeat=domains.BOOL,
                 seed=domains.SEED, drop_remainder=domains.BOOL)
def make_dataset(images, batch_size, shuffle=False, repeat=False, seed=0,
                 drop_remainder=False):
  """Returns a `tf.data.Dataset` of `float32` batches of `images`.

  The array is held once as a constant; the pipeline shuffles and batches integer
  indices, then gathers and casts a whole batch at a time, so its cost per batch is
  one `tf.gather` and one `tf.cast`. Every epoch visits each image exactly once (the
  shuffle buffer is the whole array); with `shuffle=True` each epoch has a new order,
  the sequence of orders being fixed by `seed` (and by TF's global seed, if one is
  set). Epochs are batched separately, so with `drop_remainder=False` each epoch ends
  with a smaller batch unless `batch_size` divides the number of images.

  Args:
    images: `np.ndarray` of shape `[N, ...]` (e.g. `uint8` `[N, 28, 28, 1]` from
      `static_mnist`).
    batch_size: Python `int`, images per batch.
    shuffle: Python `bool`, reshuffle the images at every epoch. Default `False`.
    repeat: Python `bool`, repeat the epochs forever. Default `False`: one epoch.
    seed: Python `int`, seed of the shuffle. Default `0`.
    drop_remainder: Python `bool`, drop each epoch's last batch if smaller than
      `batch_size`. Default `False`.

  Returns:
    dataset: `tf.data.Dataset` of `float32` tensors of shape `[B, ...]` (e.g.
      `[B, 28, 28, 1]`), with `B = batch_size` except perhaps for each epoch's last
      batch; values are those of `images` (in {0., 1.} for binarized MNIST).

  Raises:
    UserError: if `batch_size` is not a positive integer or `images` is empty.
  """
  images = np.asarray(images)
  if images.ndim < 1 or len(images) == 0:
    raise errors.UserError(f'make_dataset: no images (shape {images.shape})')
  num_images = len(images)
  table = tf.constant(images)

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing for AutoGraph to do.
  def gather(indices):
    return tf.cast(tf.gather(table, indices), tf.float32)

  dataset = tf.data.Dataset.range(num_images)
  if shuffle:
    dataset = dataset.shuffle(num_images, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
  dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if repeat:
    dataset = dataset.repeat()
  return dataset.prefetch(tf.data.AUTOTUNE)


def train_dataset(images, batch_size, seed, start_step=0):
  """Infinite batches of float32 images; epoch e is a stateless permutation by (seed, e).

  Batch k of the stream is the same whatever `start_step` the stream starts from, so that a
  resumed run sees exactly the batches it would have seen. Given a `DynamicBinarization`,
  batch k is x ~ Bernoulli(p) of its images' grey levels p, the uniforms drawn from the
  stateless seed (seed, k) folded with a salt: a fresh draw at every step (so every epoch
  binarizes each image anew), the same draws for the same seed.

  Args:
    images: `np.ndarray` `[N, ...]`, or a `DynamicBinarization`.
    batch_size: Python `int`, images per batch; each epoch is `N // batch_size` batches.
    seed: Python `int`, the run's seed.
    start_step: Python `int`, the first batch of the stream.
  """
  dynamic = isinstance(images, DynamicBinarization)
  table = tf.constant(images.probabilities if dynamic else images)
  num_examples = table.shape[0]
  steps_per_epoch = num_examples // batch_size

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing for AutoGraph to do.
  def batch_at(step):
    epoch, position = step // steps_per_epoch, step % steps_per_epoch
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_examples), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
    indices = order[position * batch_size:(position + 1) * batch_size]
    batch = tf.cast(tf.gather(table, indices), tf.float32)
    if not dynamic:
      return batch
    draw_seed = tf.random.experimental.stateless_fold_in(
        tf.stack([tf.cast(seed, tf.int64), step]), _BINARIZATION_SALT)
    return bernoulli_draw(batch, draw_seed)

  return (tf.data.Dataset.range(start_step, 2**62)
          .map(batch_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
