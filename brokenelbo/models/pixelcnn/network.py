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

from brokenelbo.models.pixelcnn import row_sampling


def concat_elu(x):
  """ELU of x and of -x concatenated on channels (PixelCNN++)."""
  return tf.nn.elu(tf.concat([x, -x], axis=-1))


def down_shift(x):
  """Moves every row down by one, filling the top row with zeros."""
  # A zero row is concatenated, not `tf.pad`ded: in tensorflow 2.21 with oneDNN on (the x86
  # default), a compiled graph in which a `tf.pad` output is added to a Conv2D + BiasAdd (as
  # in `u = down_shift(...) + cond_u(cond)` below) crashes with a segmentation fault in the
  # oneDNN layout rewrite pass (`MklLayoutRewritePass`) on some CPUs (seen on a Xeon with
  # AMX, in forward-only graphs such as evaluation). The values are the same to the bit.
  return tf.concat([tf.zeros_like(x[:, :1]), x[:, :-1]], axis=1)


def right_shift(x):
  """Moves every column right by one, filling the left column with zeros."""
  # Concatenated, not padded, for the reason in `down_shift`.
  return tf.concat([tf.zeros_like(x[:, :, :1]), x[:, :, :-1]], axis=2)


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
    return self._conv(tf.pad(x, [[0, 0], [kh - 1, 0], self._column_pad(), [0, 0]]))

  def _column_pad(self):
    kw = self.kernel_size[1]
    return [kw - 1, 0] if self.right else [(kw - 1) // 2, (kw - 1) // 2]

  def rows(self, x):
    """Output rows from a band of input rows, with no zero rows added above the band.

    Output row k reads input rows k - kh + 1, ..., k (stride 1), 2k - 1 and 2k (stride 2,
    kernel height 2), or k // 2 (transposed, stride 2, kernel height 2: the output padding
    row below the image is cropped). So input rows [a - kh + 1, b), [2a - 1, 2b - 1) and
    [a, b) give output rows [a, b), [a, b) and [2a, 2b) respectively, each the same as in
    `call` on the whole image when rows above the image are zero in the band.

    Args:
      x: `Tensor` `[B, rows, W, C]`, the band of input rows. The layer must be built.

    Returns:
      `Tensor`, the output rows that the band determines.
    """
    if self.transpose:
      return self.call(x)
    # The built layer's `call`: the same ops as calling it, without the Keras bookkeeping
    # that would double the time to trace a sampler (hundreds of calls per pass).
    return self._conv.call(tf.pad(x, [[0, 0], [0, 0], self._column_pad(), [0, 0]]))


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

  def inner_rows(self, x, a=()):
    """Rows [i, j) of c1 = conv(celu(x)) + nin(celu(a)) from x rows [i - 1, j), a rows [i, j).

    Args:
      x: `Tensor` `[B, j - i + 1, W, C]`, rows [i - 1, j) of the stream (zero above it).
      a: Python `tuple` of `Tensor`s `[B, j - i, W, C_a]`, concatenated on channels into
        the `a` of `call`.

    Returns:
      `Tensor` `[B, j - i, W, filters]`.
    """
    c1 = self._conv1.rows(concat_elu(x))
    if a:
      c1 += self._nin.call(concat_elu(tf.concat(a, axis=-1)))  # See `ShiftedConv2D.rows`.
    return c1

  def outer_rows(self, x, c1):
    """Output rows [i, j) from x rows [i, j) and c1 rows [i - 1, j) (zero above it)."""
    a_half, b_half = tf.split(self._conv2.rows(concat_elu(c1)), 2, axis=-1)
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
    self.filters = filters
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

  @tf.autograph.experimental.do_not_convert  # Plain Python control flow, traced as is.
  def sample_raster(self, uniforms, cond):
    """Raster-order samples, reusing finished rows (`row_sampling`), and their logits.

    Draws the same pixels as one full pass per pixel, pixel i being
    `uniforms_i < sigmoid(logit_i(x_{<i}))`, at the cost of about one row of the ul stream
    per pixel (see `row_program`). Trace it once (`tf.function`).

    Args:
      uniforms: `Tensor` `[B, H, W, 1]`, one uniform per pixel.
      cond: `Tensor` `[B, H, W, C]`, the conditioning map.

    Returns:
      x: `Tensor` `[B, H, W, 1]` of 0. and 1.
      logits: `Tensor` `[B, H, W, 1]`, the logit each pixel was drawn with.
    """
    if not self.variables:
      self(tf.zeros_like(uniforms), cond)  # Builds the layers.
    return row_sampling.sample(self.row_program(cond.shape[-1]), uniforms, cond)

  def row_program(self, cond_channels):
    """This network as `row_sampling.Node`s, each with the input rows its rows read.

    Row rules (row k of a node reads, rows above the image being zero):
    - `u_in`, `ul_in_left` and every `ShiftedConv2D` of a gated resnet (height 2): rows
      k - 1 and k (`CONV`); `ul_in_above` (height 1) and 1x1 layers: row k (`SAME`).
    - `down_shift`: row k - 1 (`SHIFT`), so row 0 of `u` and `ul` sees no image row.
    - Gated resnet, split where its second convolution reads its first one's output c1:
      c1 row k reads x rows k - 1, k and row k of `a`; the output row k reads x row k and
      c1 rows k - 1, k.
    - Stride-2 `ShiftedConv2D` (one zero row on top): row k reads rows 2k - 1, 2k (`DOWN`).
    - Transposed stride-2 `ShiftedConv2D`: row m reads row m // 2 (`UP`).

    Resulting last image row D(k) that row k depends on (`row_sampling.dependencies`,
    checked in the tests), with s = 1, 2, 4 at 28, 14, 7 rows:

      down pass, up pass after the first gated resnet of a block: u s k - 1, ul s k
      upsampled input of an up-pass block (s' = 2 s):  u s' (k // 2) - 1, ul s' (k // 2)

    So at 28 rows the u stream never depends on the image row being drawn: it is computed
    once per image row, after it, never per pixel. At 14 (7) rows, ul row k becomes final
    with image row 2k (4k), and u row k with image row 2k - 1 (4k - 1). While image row r
    is drawn, every pixel recomputes row r of each ul layer at 28 rows, row r / 2 of each
    ul layer at 14 rows if r is even, row r / 4 at 7 rows if r % 4 == 0, and the
    upsampled ul rows that these feed; every other row it reads comes from the cache. The
    sampler derives all of this from the rules above and checks it while planning.

    Args:
      cond_channels: Python `int`, channels of the conditioning map.

    Returns:
      Python `list` of `row_sampling.Node`.
    """
    node, f = row_sampling.Node, self.filters
    same, conv, shift = row_sampling.SAME, row_sampling.CONV, row_sampling.SHIFT
    image, cond = row_sampling.IMAGE, row_sampling.COND
    # Layers are applied by `call`, as in `ShiftedConv2D.rows`.
    program = [
        node(image, 1, 1),
        node(cond, 1, cond_channels),
        node('cond_u', 1, f, ((cond, same),), self.cond_u.call),
        node('cond_ul', 1, f, ((cond, same),), self.cond_ul.call),
        node('u_in', 1, f, ((image, conv),), self.u_in.rows),
        node('u', 1, f, (('u_in', shift), ('cond_u', same)), lambda u, c: u + c),
        node('ul_in_above', 1, f, ((image, same),), self.ul_in_above.rows),
        node('ul', 1, f, (('ul_in_above', shift), (image, conv), ('cond_ul', same)),
             lambda above, x, c: above + right_shift(self.ul_in_left.rows(x)) + c),
    ]
    scale = 1

    def resnet(name, layer, x, a=()):
      program.append(node(name + '/c1', scale, f,
                          ((x, conv),) + tuple((source, same) for source in a),
                          lambda x, *a: layer.inner_rows(x, a)))
      program.append(node(name, scale, f, ((x, same), (name + '/c1', conv)),
                          layer.outer_rows))
      return name

    def resample(name, layer, x, rule):
      program.append(node(name, scale, f, ((x, rule),), layer.rows))
      return name

    u, ul = 'u', 'ul'
    skips = []
    for level, block in enumerate(self.down_blocks):
      if level:
        scale *= 2
        down_u, down_ul = self.downsample[level - 1]
        u = resample(f'down{level}/u', down_u, u, row_sampling.DOWN)
        ul = resample(f'down{level}/ul', down_ul, ul, row_sampling.DOWN)
      for i, (res_u, res_ul) in enumerate(block):
        u = resnet(f'down{level}/{i}/u', res_u, u)
        ul = resnet(f'down{level}/{i}/ul', res_ul, ul, (u,))
        skips.append((u, ul))
    for level, block in enumerate(self.up_blocks):
      if level:
        scale //= 2
        up_u, up_ul = self.upsample[level - 1]
        u = resample(f'up{level}/u', up_u, u, row_sampling.UP)
        ul = resample(f'up{level}/ul', up_ul, ul, row_sampling.UP)
      for i, (res_u, res_ul) in enumerate(block):
        skip_u, skip_ul = skips.pop()
        u = resnet(f'up{level}/{i}/u', res_u, u, (skip_u,))
        ul = resnet(f'up{level}/{i}/ul', res_ul, ul, (u, skip_ul))
    program.append(node(row_sampling.LOGITS, 1, 1, ((ul, same),),
                        lambda ul: self.out.call(tf.nn.elu(ul))))
    return program
