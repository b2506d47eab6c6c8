"""A PixelCNN++-style gated resnet for binary images, conditioned on z.

The network maps an image x and a conditioning map c (the same height and width) to one
Bernoulli logit per pixel, where logit i depends on the image pixels strictly before i in
raster order and on c everywhere. Two streams, as in PixelCNN++ [2]: `u` sees the rows
above a pixel (down-shifted convolutions), `ul` the rows above and the pixels to the left
(down-right-shifted convolutions), which together leave no blind spot.

Layout (after the paper's Appendix F, which gives a gated PixelCNN of 64 features): six
blocks at 28x28, 14x14, 7x7 (down pass) and 7x7, 14x14, 28x28 (up pass) of
`layers_per_block` gated resnet layers each, strided shifted convolutions between
resolutions, and each up-pass layer receives the output of the matching down-pass layer
(shortcut connections). The conditioning map enters both streams after their initial shift
through a 1x1 convolution: equivalently, [x, c] is convolved with a mask that is causal on
x and unmasked on c, so that c reaches every pixel, pixel 0 included.

The network is written once, as a program of rows (`PixelCNN.row_program`, in the terms of
`row_sampling`) that both the parallel pass over whole images (training, `log_prob`) and
the fast raster-order sampler run.

[1] van den Oord, Kalchbrenner, Vinyals, Espeholt, Graves, Kavukcuoglu. Conditional Image
    Generation with PixelCNN Decoders. NeurIPS 2016.
[2] Salimans, Karpathy, Chen, Kingma. PixelCNN++: Improving the PixelCNN with Discretized
    Logistic Mixture Likelihood and Other Modifications. ICLR 2017.
"""

import gin
import tensorflow as tf
import tf_keras

from brokenelbo import domains
from brokenelbo.models.pixelcnn import row_sampling


def concat_elu(x):
  """ELU of x and of -x concatenated on channels (PixelCNN++)."""
  return tf.nn.elu(tf.concat([x, -x], axis=-1))


def down_shift(x):
  """Moves every row down by one, filling the top row with zeros (`row_sampling.SHIFT`)."""
  return row_sampling.band(x, *row_sampling.SHIFT.needs(0, x.shape[1]))


def right_shift(x):
  """Moves every column right by one, filling the left column with zeros."""
  # Concatenated, not padded, for the reason in `row_sampling.band`.
  return tf.concat([tf.zeros_like(x[:, :, :1]), x[:, :, :-1]], axis=2)


class ShiftedConv2D(tf_keras.layers.Layer):
  """A convolution whose output at (i, j) sees only rows <= i (and, `right`, cols <= j).

  Called on a band of input rows, it returns the output rows that the band determines. The
  rows above the image are zero: in the band, or `zero_rows` of them added here. Output row
  k reads input rows k - kh + 1, ..., k (stride 1), 2k - 1 and 2k (stride 2, kernel height
  2: one zero row on top), or k // 2 (transposed, stride 2, kernel height 2: the output
  padding row below the image is cropped, as in PixelCNN++'s `deconv2d` [2]). So input rows
  [a - kh + 1, b), [2a - 1, 2b - 1) and [a, b) give output rows [a, b), [a, b) and
  [2a, 2b) respectively (`rule`). Columns are zero-padded here: (kw - 1) // 2 on each side
  (down-shifted, centred on column j) or kw - 1 on the left (`right`, down-right-shifted).

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
    self.filters = filters
    self.kernel_size = kernel_size
    self.right = right
    self.stride = stride
    self.transpose = transpose
    if transpose:
      # Output (H-1)*s + k + (s-1), cropped below to H*s like PixelCNN++'s deconv2d.
      self._conv = tf_keras.layers.Conv2DTranspose(
          filters, kernel_size, strides=stride, padding='valid',
          output_padding=(stride - 1, stride - 1) if stride > 1 else None)
    else:
      self._conv = tf_keras.layers.Conv2D(filters, kernel_size, strides=stride,
                                          padding='valid')

  @property
  def rule(self):
    """The `row_sampling.RowRule` of the input rows that output rows read (see above)."""
    kh = self.kernel_size[0]
    if self.stride == 1 and not self.transpose:
      return row_sampling.RowRule(back=kh - 1)
    if self.stride == 2 and kh == 2:
      return row_sampling.UP if self.transpose else row_sampling.DOWN
    raise ValueError(f'No row rule for kernel height {kh}, stride {self.stride}, '
                     f'transpose={self.transpose}.')

  def node(self, name, scale, x):
    """The layer as the node `name` of a row program, reading the node `x`.

    Args:
      name: Python `str`.
      scale: Python `int`, the downsampling factor of the node (not of `x`).
      x: Python `str`, the input node.

    Returns:
      `row_sampling.Node` that `pads_above`: the layer adds the zero rows above the image
      that it reads in the parallel pass to the padding of its columns.
    """
    return row_sampling.Node(name, scale, self.filters, ((x, self.rule),),
                             lambda rows, zero_rows=(0,): self(rows, zero_rows=zero_rows[0]),
                             pads_above=True)

  def call(self, x, zero_rows=0):
    """Output rows from a band `x` `[B, rows, W, C]` of input rows (see the class).

    Args:
      x: `Tensor`, the band.
      zero_rows: Python `int`, zero rows to add above the band (none if it holds them).

    Returns:
      `Tensor`, the output rows that the band determines.
    """
    kh, kw = self.kernel_size
    if self.transpose:
      if zero_rows:
        raise ValueError('A transposed convolution reads no rows above its band.')
      y = self._conv(x)
      height, width = y.shape[1] - kh + 1, y.shape[2] - kw + 1
      if self.right:
        return y[:, :height, :width]
      return y[:, :height, (kw - 1) // 2:(kw - 1) // 2 + width]
    columns = [kw - 1, 0] if self.right else [(kw - 1) // 2, (kw - 1) // 2]
    return self._conv(tf.pad(x, [[0, 0], [zero_rows, 0], columns, [0, 0]]))


class GatedResnet(tf_keras.layers.Layer):
  """PixelCNN++ gated resnet layer [2]: x + glu(conv(celu(c1))), c1 = conv(celu(x)) + nin(celu(a)).

  Its second convolution reads c1 with a row offset, so in a row program the layer is two
  nodes (`nodes`): c1 (`inner`) and the output (`outer`). It is applied through them, not
  called as a whole.

  Args:
    filters: Python `int`, features of the stream.
    right: Python `bool`; down-right-shifted convolutions (`ul` stream) if `True`.
  """

  def __init__(self, filters, right=False, **kwargs):
    super().__init__(**kwargs)
    kernel = (2, 2) if right else (2, 3)
    self.filters = filters
    self._conv1 = ShiftedConv2D(filters, kernel, right=right)
    self._conv2 = ShiftedConv2D(2 * filters, kernel, right=right)
    self._nin = tf_keras.layers.Dense(filters)

  def nodes(self, name, scale, x, a=()):
    """The layer as the nodes `name + '/c1'` and `name` of a row program.

    Args:
      name: Python `str`, the name of the output node.
      scale: Python `int`, the downsampling factor of the stream.
      x: Python `str`, the node of the stream.
      a: Python `tuple` of `str`, the nodes concatenated on channels into `a` (none: no
        `nin` term).

    Returns:
      Python `list` of two `row_sampling.Node` that `pads_above`, as `ShiftedConv2D.node`.
    """
    c1, same = name + '/c1', row_sampling.SAME
    return [row_sampling.Node(c1, scale, self.filters,
                              ((x, self._conv1.rule),) + tuple((s, same) for s in a),
                              self.inner, pads_above=True),
            row_sampling.Node(name, scale, self.filters,
                              ((x, same), (c1, self._conv2.rule)), self.outer,
                              pads_above=True)]

  def inner(self, x, *a, zero_rows=(0,)):
    """c1 = conv(celu(x)) + nin(celu(a)) from bands of x and of every part of a.

    The bands of a are the rows of c1, never above the image; `zero_rows[0]` zero rows
    are added above the band of x (`row_sampling.Node`), after celu, which maps 0 to 0.
    """
    c1 = self._conv1(concat_elu(x), zero_rows=zero_rows[0])
    if a:
      c1 += self._nin(concat_elu(a[0] if len(a) == 1 else tf.concat(a, axis=-1)))
    return c1

  def outer(self, x, c1, zero_rows=(0, 0)):
    """The output x + glu(conv(celu(c1))) from bands of x and c1 (`zero_rows` as in `inner`)."""
    a_half, b_half = tf.split(self._conv2(concat_elu(c1), zero_rows=zero_rows[1]), 2,
                              axis=-1)
    return x + a_half * tf.sigmoid(b_half)

  def call(self, *args, **kwargs):
    raise NotImplementedError('A GatedResnet is applied as the two nodes of `nodes`.')


@gin.configurable
@domains.checked(filters=domains.POSITIVE_INT, layers_per_block=domains.POSITIVE_INT,
                 num_resolutions=domains.POSITIVE_INT)
class PixelCNN(tf.Module):
  """Gated PixelCNN++-style network: (image, conditioning map) -> Bernoulli logits.

  Args:
    filters: Python `int`, features in every layer (Appendix F: 64).
    layers_per_block: Python `int`, gated resnet layers per block (2, as in
      `configs/base.gin`).
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

  @tf.autograph.experimental.do_not_convert  # Plain Python control flow, traced as is.
  def __call__(self, x, cond):
    """Logits `[B, H, W, 1]` for images `x` `[B, H, W, 1]` and map `cond` `[B, H, W, C]`.

    One parallel pass of `row_program` over whole activations (`row_sampling.run_full`).
    The layers are applied by Keras: the first call builds them, and each computes in its
    dtype policy's compute dtype.
    """
    sources = {row_sampling.IMAGE: 2. * x - 1., row_sampling.COND: cond}
    values = row_sampling.run_full(self.row_program(cond.shape[-1]), sources)
    return values[row_sampling.LOGITS]

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
    """This network as `row_sampling.Node`s: the one description of both of its passes.

    `__call__` runs the program over whole images (`row_sampling.run_full`), `sample_raster`
    row by row (`row_sampling.sample`). Row k of a node reads (rows above the image being
    zero) rows k - 1 and k of its input through a convolution of height 2 (`CONV`: `u_in`,
    `ul_in_left`, a gated resnet's two), row k through one of height 1 or a 1x1 layer
    (`SAME`), row k - 1 through `down_shift` (`SHIFT`), rows 2k - 1 and 2k through a
    stride-2 convolution (`DOWN`) and row k // 2 through a transposed one (`UP`). So, with
    s = 1, 2, 4 at 28, 14, 7 rows, row k of u depends on the image rows up to s k - 1 and
    row k of ul up to s k (after an upsampling, s' = 2 s: up to s' (k // 2) - 1 and
    s' (k // 2)): at 28 rows u never depends on the image row being drawn, and while image
    row r is drawn each pixel recomputes row r of each ul layer at 28 rows, row r / 2 at 14
    rows if r is even, row r / 4 at 7 rows if r % 4 == 0, and the upsampled ul rows these
    feed. The sampler derives this from the rules and checks it while planning.

    Args:
      cond_channels: Python `int`, channels of the conditioning map.

    Returns:
      Python `list` of `row_sampling.Node`, the sources `IMAGE` (`2 x - 1`) and `COND`
      first and `LOGITS` last.
    """
    program = self._stem(cond_channels)
    u, ul, scale, skips = self._down_pass(program)
    ul = self._up_pass(program, u, ul, scale, skips)
    program.append(row_sampling.Node(row_sampling.LOGITS, 1, 1, ((ul, row_sampling.SAME),),
                                     lambda ul: self.out(tf.nn.elu(ul))))
    return program

  def _stem(self, cond_channels):
    """The program's sources and the first nodes of the streams, `u` and `ul`: `u` sums
    `u_in` shifted down and `cond_u`, `ul` sums `ul_in_above` shifted down, `ul_in_left`
    shifted right (within its row) and `cond_ul`."""
    node, f = row_sampling.Node, self.filters
    same, shift = row_sampling.SAME, row_sampling.SHIFT
    image, cond = row_sampling.IMAGE, row_sampling.COND
    return [
        node(image, 1, 1),
        node(cond, 1, cond_channels),
        self.u_in.node('u_in', 1, image),
        node('cond_u', 1, f, ((cond, same),), self.cond_u),
        node('u', 1, f, (('u_in', shift), ('cond_u', same)), lambda u, c: u + c),
        self.ul_in_above.node('ul_in_above', 1, image),
        self.ul_in_left.node('ul_in_left', 1, image),
        node('cond_ul', 1, f, ((cond, same),), self.cond_ul),
        node('ul', 1, f, (('ul_in_above', shift), ('ul_in_left', same), ('cond_ul', same)),
             lambda above, left, c: above + right_shift(left) + c),
    ]

  def _down_pass(self, program):
    """Appends the down pass to `program`; returns its last `u` and `ul` nodes, their
    scale, and the `(u, ul)` of its every layer (for the up pass's shortcuts)."""
    u, ul, scale, skips = 'u', 'ul', 1, []
    for level, block in enumerate(self.down_blocks):
      if level:
        scale *= 2
        down_u, down_ul = self.downsample[level - 1]
        u = _resample(program, f'down{level}/u', down_u, scale, u)
        ul = _resample(program, f'down{level}/ul', down_ul, scale, ul)
      for i, (res_u, res_ul) in enumerate(block):
        u = _resnet(program, f'down{level}/{i}/u', res_u, scale, u)
        ul = _resnet(program, f'down{level}/{i}/ul', res_ul, scale, ul, (u,))
        skips.append((u, ul))
    return u, ul, scale, skips

  def _up_pass(self, program, u, ul, scale, skips):
    """Appends the up pass to `program`, each layer reading the down pass's matching
    `skips` (last first); returns its last `ul` node."""
    for level, block in enumerate(self.up_blocks):
      if level:
        scale //= 2
        up_u, up_ul = self.upsample[level - 1]
        u = _resample(program, f'up{level}/u', up_u, scale, u)
        ul = _resample(program, f'up{level}/ul', up_ul, scale, ul)
      for i, (res_u, res_ul) in enumerate(block):
        skip_u, skip_ul = skips.pop()
        u = _resnet(program, f'up{level}/{i}/u', res_u, scale, u, (skip_u,))
        ul = _resnet(program, f'up{level}/{i}/ul', res_ul, scale, ul, (u, skip_ul))
    return ul


def _resnet(program, name, layer, scale, x, a=()):
  """Appends the nodes of the `GatedResnet` `layer` to `program`; returns the last."""
  program.extend(layer.nodes(name, scale, x, a))
  return name


def _resample(program, name, layer, scale, x):
  """Appends the node of the strided `ShiftedConv2D` `layer` to `program`; returns it."""
  program.append(layer.node(name, scale, x))
  return name
