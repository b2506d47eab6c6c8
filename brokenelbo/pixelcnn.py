"""A PixelCNN++-style gated resnet for binary images, conditioned on z.

The network maps an image x and a conditioning map c (the same height and width) to one
Bernoulli logit per pixel, where logit i depends on the image pixels strictly before i in
raster order and on c everywhere. Two streams, as in PixelCNN++ [2]: `u` sees the rows
above a pixel (down-shifted convolutions), `ul` the rows above and the pixels to the left
(down-right-shifted convolutions), which together leave no blind spot.

Layout (issue spec, after the paper's Appendix F): six blocks at 28x28, 14x14, 7x7 (down
pass) and 7x7, 14x14, 28x28 (up pass) of `layers_per_block` gated resnet layers each,
strided shifted convolutions between resolutions, and each up-pass layer receives the
output of the matching down-pass layer (shortcut connections). The conditioning map enters
both streams after their initial shift through a 1x1 convolution: equivalently, the
28x28x2 concatenation [x, c] is convolved with a mask that is causal on the image channel
and unmasked on the conditioning channel, so that c reaches every pixel, pixel 0 included.

#### References

[1] van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional Image
    Generation with PixelCNN Decoders. NeurIPS 2016.
[2] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
    Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
"""

import gin
import tensorflow as tf
import tf_keras


def concat_elu(x):
  """ELU of x and of -x concatenated on channels (PixelCNN++)."""
  return tf.nn.elu(tf.concat([x, -x], axis=-1))


def down_shift(x):
  """Moves every row down by one, filling the top row with zeros."""
  return tf.pad(x[:, :-1], [[0, 0], [1, 0], [0, 0], [0, 0]])


def right_shift(x):
  """Moves every column right by one, filling the left column with zeros."""
  return tf.pad(x[:, :, :-1], [[0, 0], [0, 0], [1, 0], [0, 0]])


class ShiftedConv2D(tf_keras.layers.Layer):
  """A convolution whose output at (i, j) sees only rows <= i (and, `right`, cols <= j).

  Args:
    filters: Python `int`, output channels.
    kernel_size: Python `tuple` `(height, width)`; `(2, 3)` down-shifted, `(2, 2)`
      down-right-shifted.
    right: Python `bool`; `True` for a down-right-shifted convolution (the `ul` stream).
    stride: Python `int`, 1 or 2 (downsampling).
    transpose: Python `bool`; a transposed (upsampling) convolution with the same support.
  """

  def __init__(self, filters, kernel_size, right=False, stride=1, transpose=False,
               **kwargs):
    super().__init__(**kwargs)
    self.kernel_size = kernel_size
    self.right = right
    self.transpose = transpose
    if transpose:
      # Output (H-1)*s + k + (s-1), cropped below to H*s like PixelCNN++'s deconv2d.
      self._conv = tf_keras.layers.Conv2DTranspose(
          filters, kernel_size, strides=stride, padding='valid',
          output_padding=(stride - 1, stride - 1) if stride > 1 else None)
    else:
      self._conv = tf_keras.layers.Conv2D(filters, kernel_size, strides=stride,
                                          padding='valid')

  def call(self, x):
    kh, kw = self.kernel_size
    if self.transpose:
      y = self._conv(x)
      height, width = y.shape[1] - kh + 1, y.shape[2] - kw + 1
      if self.right:
        return y[:, :height, :width]
      return y[:, :height, (kw - 1) // 2:(kw - 1) // 2 + width]
    if self.right:
      pad = [[0, 0], [kh - 1, 0], [kw - 1, 0], [0, 0]]
    else:
      pad = [[0, 0], [kh - 1, 0], [(kw - 1) // 2, (kw - 1) // 2], [0, 0]]
    return self._conv(tf.pad(x, pad))


class GatedResnet(tf_keras.layers.Layer):
  """PixelCNN++ gated resnet layer: x + glu(conv(celu(conv(celu(x)) + nin(celu(a))))).

  Args:
    filters: Python `int`, features of the stream.
    right: Python `bool`; down-right-shifted convolutions (`ul` stream) if `True`.
  """

  def __init__(self, filters, right=False, **kwargs):
    super().__init__(**kwargs)
    kernel = (2, 2) if right else (2, 3)
    self._conv1 = ShiftedConv2D(filters, kernel, right=right)
    self._conv2 = ShiftedConv2D(2 * filters, kernel, right=right)
    self._nin = tf_keras.layers.Dense(filters)

  def call(self, x, a=None):
    c1 = self._conv1(concat_elu(x))
    if a is not None:
      c1 += self._nin(concat_elu(a))
    a_half, b_half = tf.split(self._conv2(concat_elu(c1)), 2, axis=-1)
    return x + a_half * tf.sigmoid(b_half)


@gin.configurable
class PixelCNN(tf.Module):
  """Gated PixelCNN++-style network: (image, conditioning map) -> Bernoulli logits.

  Args:
    filters: Python `int`, features in every layer (issue spec: 64).
    layers_per_block: Python `int`, gated resnet layers per block (issue spec: 2).
    num_resolutions: Python `int`, resolutions in the down pass (3: 28, 14, 7).
  """

  def __init__(self, filters=64, layers_per_block=2, num_resolutions=3, name=None):
    super().__init__(name=name)
    self.num_resolutions = num_resolutions
    self.layers_per_block = layers_per_block
    self.u_in = ShiftedConv2D(filters, (2, 3))
    self.ul_in_above = ShiftedConv2D(filters, (1, 3))
    self.ul_in_left = ShiftedConv2D(filters, (2, 1), right=True)
    self.cond_u = tf_keras.layers.Conv2D(filters, 1)
    self.cond_ul = tf_keras.layers.Conv2D(filters, 1)

    def resnets():
      return [(GatedResnet(filters), GatedResnet(filters, right=True))
              for _ in range(layers_per_block)]

    self.down_blocks = [resnets() for _ in range(num_resolutions)]
    self.up_blocks = [resnets() for _ in range(num_resolutions)]
    self.downsample = [(ShiftedConv2D(filters, (2, 3), stride=2),
                        ShiftedConv2D(filters, (2, 2), right=True, stride=2))
                       for _ in range(num_resolutions - 1)]
    self.upsample = [(ShiftedConv2D(filters, (2, 3), stride=2, transpose=True),
                      ShiftedConv2D(filters, (2, 2), right=True, stride=2, transpose=True))
                     for _ in range(num_resolutions - 1)]
    self.out = tf_keras.layers.Dense(1)

  def __call__(self, x, cond):
    """Logits `[B, H, W, 1]` for images `x` `[B, H, W, 1]` and map `cond` `[B, H, W, C]`."""
    x = 2. * x - 1.
    u = down_shift(self.u_in(x)) + self.cond_u(cond)
    ul = (down_shift(self.ul_in_above(x)) + right_shift(self.ul_in_left(x)) +
          self.cond_ul(cond))
    skips = []
    for level, block in enumerate(self.down_blocks):
      if level:
        down_u, down_ul = self.downsample[level - 1]
        u, ul = down_u(u), down_ul(ul)
      for res_u, res_ul in block:
        u = res_u(u)
        ul = res_ul(ul, a=u)
        skips.append((u, ul))
    for level, block in enumerate(self.up_blocks):
      if level:
        up_u, up_ul = self.upsample[level - 1]
        u, ul = up_u(u), up_ul(ul)
      for res_u, res_ul in block:
        skip_u, skip_ul = skips.pop()
        u = res_u(u, a=skip_u)
        ul = res_ul(ul, a=tf.concat([u, skip_ul], axis=-1))
    return self.out(tf.nn.elu(ul))
