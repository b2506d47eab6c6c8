"""Gated layers shared by the encoders and decoders (Appendix F of the paper).

Every layer of the paper's networks is a gated linear unit (Dauphin et al., 2017):

  h(x) = (W1 x + b1) * sigmoid(W2 x + b2)

computed here as one convolution (or dense layer) with twice the output depth whose result
is split in two halves, so that each gated layer costs one matrix multiply.
"""

import tensorflow as tf
import tf_keras


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

  def call(self, x):
    return glu(self._conv(x))
