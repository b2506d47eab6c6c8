"""Gated layers shared by the encoders and decoders (Appendix F of the paper).

Every layer of the paper's networks is a gated linear unit (Dauphin et al., 2017):

  h(x) = (W1 x + b1) * sigmoid(W2 x + b2)

computed here as one convolution (or dense layer) with twice the output depth whose result
is split in two halves, so that each gated layer costs one matrix multiply.

Some convolutions of the paper's networks run far below the machine's matrix-multiply rate
in TensorFlow's CPU kernels: a convolution whose kernel covers its whole input (the
encoder's last layer) and a transposed convolution of a 1x1 input (the decoder's first).
Both are one matrix product, which `GatedConv2D` computes from the same Keras variables
(checkpoints do not change); on one CPU thread at batch 64 this made the first 14x and the
second 2.2x faster, forward and backward. `reference_convolutions()` turns the rewrites
off, for tests and to time them (`python -m brokenelbo.bench --reference_convolutions`).
"""

import contextlib

import tensorflow as tf
import tf_keras

_REWRITES = [True]


@contextlib.contextmanager
def reference_convolutions():
  """Within this context, `GatedConv2D`s traced run their Keras convolution as is."""
  _REWRITES.append(False)
  try:
    yield
  finally:
    _REWRITES.pop()


def glu(x):
  """Gated linear unit on the last axis: `a * sigmoid(b)` for `[a, b] = split(x)`."""
  a, b = tf.split(x, 2, axis=-1)
  return a * tf.sigmoid(b)


class GatedDense(tf_keras.layers.Layer):
  """Dense gated linear unit: `(W1 x + b1) * sigmoid(W2 x + b2)`."""

  def __init__(self, units, **kwargs):
    super().__init__(**kwargs)
    self.units = units
    self._dense = tf_keras.layers.Dense(2 * units)

  def call(self, x):
    return glu(self._dense(x))


class GatedConv2D(tf_keras.layers.Layer):
  """Convolutional gated linear unit; `transpose=True` gives the deconvolution.

  Args:
    depth: Python `int`, number of output channels.
    kernel_size: Python `int`, square kernel size.
    stride: Python `int`, stride (the upsampling factor when `transpose=True`).
    padding: `'same'` or `'valid'`.
    transpose: Python `bool`; if `True` a transposed convolution (deconvolution). A
      stride-1 'same' deconvolution is a convolution with a flipped kernel, so it is built
      as `Conv2D`, which TensorFlow runs 2-3x faster on CPU.
  """

  def __init__(self, depth, kernel_size, stride, padding, transpose=False, **kwargs):
    super().__init__(**kwargs)
    same_size = stride == 1 and padding == 'same'
    conv = (tf_keras.layers.Conv2DTranspose if transpose and not same_size
            else tf_keras.layers.Conv2D)
    self._conv = conv(2 * depth, kernel_size, strides=stride, padding=padding)

  def build(self, input_shape):
    self._conv.build(input_shape)
    size = tuple(input_shape[1:3])
    transposed = isinstance(self._conv, tf_keras.layers.Conv2DTranspose)
    if self._conv.padding == 'valid' and not transposed and size == self._conv.kernel_size:
      self._rewrite = self._whole_input_conv
    elif self._conv.padding == 'valid' and transposed and size == (1, 1):
      self._rewrite = self._one_pixel_deconv
    else:
      self._rewrite = None
    super().build(input_shape)

  def call(self, x):
    if self._rewrite is not None and _REWRITES[-1]:
      return glu(self._rewrite(x))
    return glu(self._conv(x))

  def _whole_input_conv(self, x):
    """A 'valid' convolution of a kernel-sized input: one matrix product."""
    kernel = self._conv.kernel
    flat = tf.reshape(kernel, [-1, kernel.shape[-1]])
    y = tf.matmul(tf.reshape(x, [-1, flat.shape[0]]), flat) + self._conv.bias
    return y[:, tf.newaxis, tf.newaxis, :]

  def _one_pixel_deconv(self, x):
    """A 'valid' transposed convolution of a 1x1 input: one matrix product.

    `y[i, j, o] = sum_c x[c] K[i, j, o, c]` for the transposed kernel `K` `[k, k, out, in]`.
    """
    kernel = self._conv.kernel
    k, _, depth, channels = kernel.shape
    flat = tf.reshape(tf.transpose(kernel, [3, 0, 1, 2]), [channels, k * k * depth])
    y = tf.matmul(tf.reshape(x, [-1, channels]), flat)
    return tf.reshape(y, [-1, k, k, depth]) + self._conv.bias
