"""Tests for `network.PixelCNN`, its fast sampler and `decoders.PixelCNNDecoder`.

Causality is checked on exact zeros: the derivative of logit i with respect to image pixel
j (raster order) is 0. for every j >= i, and non-zero for the neighbours a causal network must
see (left, above-left, above, above-right: no blind spot). Derivatives are computed as one
batched gradient: copy k of the input contributes only its logit at position i_k, so the
gradient with respect to copy k is row i_k of the Jacobian.

The fast sampler (`PixelCNN.sample_raster`, `row_sampling`) must draw the pixels of the
naive one (a full pass per pixel) from the same uniforms, on networks with random weights
and biases whose logits are mostly in [-2, 2], so that a wrong logit changes some pixels.
Both passes run one description of the network (`PixelCNN.row_program`): a layer added to
it changes both.
"""

import functools

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras

from brokenelbo.models import decoders
from brokenelbo.models.pixelcnn import distribution
from brokenelbo.models.pixelcnn import network as pixelcnn
from brokenelbo.models.pixelcnn import row_sampling


def _binary(shape, seed):
  return tf.constant((np.random.RandomState(seed).rand(*shape) < .5).astype(np.float32))


def _normal(shape, seed):
  return tf.constant(np.random.RandomState(seed).randn(*shape).astype(np.float32))


def _network(layers_per_block):
  tf_keras.utils.set_random_seed(0)
  return pixelcnn.PixelCNN(filters=8, layers_per_block=layers_per_block)


def _jacobian_rows(network, x, cond, positions):
  """Rows `positions` of d logits / d x and d logits / d cond, each `[K, H * W]`."""
  k = len(positions)
  height, width = x.shape[1], x.shape[2]
  xs, conds = tf.tile(x, [k, 1, 1, 1]), tf.tile(cond, [k, 1, 1, 1])
  with tf.GradientTape(persistent=True) as tape:
    tape.watch([xs, conds])
    logits = tf.reshape(network(xs, conds), [k, height * width])
    selected = tf.gather(logits, positions, axis=1, batch_dims=1)
  d_x = tape.gradient(selected, xs).numpy().reshape(k, height * width)
  d_cond = tape.gradient(selected, conds).numpy().reshape(k, -1)
  return d_x, d_cond


def _causal_neighbours(i, width, height):
  row, col = divmod(i, width)
  for d_row, d_col in ((0, -1), (-1, -1), (-1, 0), (-1, 1)):
    r, c = row + d_row, col + d_col
    if 0 <= r < height and 0 <= c < width:
      yield r * width + c


class PixelCNNCausalityTest(tf.test.TestCase, parameterized.TestCase):

  def test_shifts_move_by_one_and_fill_zeros(self):
    x = np.arange(1., 2 * 3 * 4 * 2 + 1., dtype=np.float32).reshape(2, 3, 4, 2)
    down = np.zeros_like(x)
    down[:, 1:] = x[:, :-1]
    right = np.zeros_like(x)
    right[:, :, 1:] = x[:, :, :-1]
    self.assertAllEqual(down, pixelcnn.down_shift(tf.constant(x)))
    self.assertAllEqual(right, pixelcnn.right_shift(tf.constant(x)))

  def _check_rows(self, d_x, d_cond, positions, height, width):
    for row_x, row_cond, i in zip(d_x, d_cond, positions):
      # Exactly causal: no dependence on pixel i itself or on any later pixel.
      self.assertAllEqual(row_x[i:], np.zeros_like(row_x[i:]), msg=f'pixel {i}')
      for j in _causal_neighbours(i, width, height):
        self.assertNotEqual(row_x[j], 0., msg=f'pixel {i} does not see pixel {j}')
      # The conditioning map reaches every pixel, pixel 0 included, at its own position.
      self.assertNotEqual(row_cond[i], 0., msg=f'pixel {i} does not see cond')

  @parameterized.named_parameters(('one_layer_per_block', 1), ('two_layers_per_block', 2))
  def test_full_jacobian_is_causal_8x8(self, layers_per_block):
    height = width = 8  # 8, 4, 2 and back up: the smallest image with 3 resolutions.
    network = _network(layers_per_block)
    x, cond = _binary([1, height, width, 1], 1), _normal([1, height, width, 1], 2)
    positions = list(range(height * width))
    d_x, d_cond = _jacobian_rows(network, x, cond, positions)
    self.assertEqual(network(x, cond).shape, (1, height, width, 1))
    self._check_rows(d_x, d_cond, positions, height, width)
    self.assertAllEqual(np.triu(d_x), np.zeros_like(d_x))
    if layers_per_block == 2:
      # Two layers per block see the whole past of every pixel on an 8x8 image.
      self.assertTrue(np.all(np.tril(d_x, -1)[np.tril_indices(height * width, -1)] != 0.))

  @parameterized.named_parameters(('one_layer_per_block', 1), ('two_layers_per_block', 2))
  def test_sampled_rows_are_causal_28x28(self, layers_per_block):
    height = width = 28  # 28, 14, 7 and back up, as in the paper.
    network = _network(layers_per_block)
    x, cond = _binary([1, height, width, 1], 3), _normal([1, height, width, 1], 4)
    # Corners, row ends, and pixels on both sides of the 2x and 4x downsampling grid.
    special = [(0, 0), (0, 1), (0, 27), (1, 0), (1, 27), (27, 0), (27, 26), (27, 27),
               (13, 13), (13, 14), (14, 13), (14, 14), (3, 3), (3, 4), (4, 3), (4, 4),
               (7, 6), (6, 7), (20, 21), (21, 20)]
    positions = sorted({r * width + c for r, c in special} |
                       set(np.random.RandomState(5).choice(height * width, 16).tolist()))
    d_x, d_cond = _jacobian_rows(network, x, cond, positions)
    self._check_rows(d_x, d_cond, positions, height, width)

  def test_logits_do_not_change_with_later_pixels(self):
    # The same statement as a finite difference: flipping pixels j >= i leaves logit i.
    height = width = 8
    network = _network(1)
    x = _binary([1, height, width, 1], 6)
    cond = _normal([1, height, width, 1], 7)
    i = 27
    flat = x.numpy().reshape(-1)
    flipped = flat.copy()
    flipped[i:] = 1. - flipped[i:]
    logits = network(x, cond).numpy().reshape(-1)
    logits_flipped = network(tf.reshape(flipped, x.shape), cond).numpy().reshape(-1)
    self.assertAllClose(logits[:i + 1], logits_flipped[:i + 1], rtol=0., atol=1e-6)
    self.assertGreater(np.abs(logits[i + 1:] - logits_flipped[i + 1:]).max(), 1e-4)


def _random_network(height, layers_per_block, num_resolutions, seed=0,
                    network_class=pixelcnn.PixelCNN):
  """A built network whose kernels are perturbed by 50% and whose biases are random.

  `tf_keras.utils.set_random_seed` (Python's, NumPy's and TensorFlow's generators): the
  initializers of unseeded Keras layers draw their seeds from Python's `random`, whose state
  depends on the tests that ran before in the same worker."""
  tf_keras.utils.set_random_seed(seed)
  network = network_class(filters=8, layers_per_block=layers_per_block,
                          num_resolutions=num_resolutions)
  network(tf.zeros([1, height, height, 1]), tf.zeros([1, height, height, 1]))
  rng = np.random.RandomState(seed)
  for variable in network.variables:
    noise = rng.randn(*variable.shape).astype(np.float32)
    variable.assign(variable * (1. + .5 * noise) if len(variable.shape) > 1 else .1 * noise)
  return network


class ShiftedConv2DRowsTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      ('down', (2, 3), False, 1, False), ('down_right', (2, 2), True, 1, False),
      ('above', (1, 3), False, 1, False), ('strided', (2, 3), False, 2, False),
      ('strided_right', (2, 2), True, 2, False), ('transposed', (2, 3), False, 2, True),
      ('transposed_right', (2, 2), True, 2, True))
  def test_rows_of_a_band_are_rows_of_the_whole_output(self, kernel, right, stride,
                                                       transpose):
    tf_keras.utils.set_random_seed(0)
    layer = pixelcnn.ShiftedConv2D(3, kernel, right=right, stride=stride,
                                   transpose=transpose)
    x = _normal([2, 8, 8, 2], 0)
    padded = np.pad(x.numpy(), [[0, 0], [2, 0], [0, 0], [0, 0]])  # Zero rows -2 and -1.
    # The whole image after kh - 1 zero rows (none for a transposed convolution), in the
    # band or added by the layer (as in the parallel pass).
    above = 0 if transpose else kernel[0] - 1
    full = layer(tf.constant(padded[:, 2 - above:])).numpy()
    self.assertEqual(full.shape[1], 16 if transpose else 8 // stride)
    self.assertAllEqual(layer(x, zero_rows=above), full)
    for a, b in ((0, 1), (0, 3), (2, 4), (3, 4)):
      if transpose:  # Input rows [a, b) give output rows [2a, 2b).
        lo, hi, out = a, b, (2 * a, 2 * b)
      elif stride == 2:  # Output rows [a, b) read input rows [2a - 1, 2b - 1).
        lo, hi, out = 2 * a - 1, 2 * b - 1, (a, b)
      else:  # Output rows [a, b) read input rows [a - kh + 1, b).
        lo, hi, out = a - kernel[0] + 1, b, (a, b)
      # The rows that the sampler and the parallel pass give the layer.
      self.assertEqual(layer.rule.needs(*out), (lo, hi))
      self.assertEqual(layer.rule.first(lo), out[0])
      band = layer(tf.constant(padded[:, lo + 2:hi + 2])).numpy()
      self.assertAllClose(full[:, out[0]:out[1]], band, rtol=0., atol=1e-6,
                          msg=f'rows [{a}, {b})')


class _WithExtraLayer(pixelcnn.PixelCNN):
  """The network with one more gated resnet on the ul stream, only in its `row_program`.

  The layer's two nodes come after the node `after`, whose readers read the layer instead.
  The layer reads `after` as x and the nodes `a` as a, like the other `ul` layers.
  """

  def __init__(self, after, a, **kwargs):
    super().__init__(**kwargs)
    self.after, self.a = after, a
    self.extra = pixelcnn.GatedResnet(self.filters, right=True)
    self.with_extra = True

  def row_program(self, cond_channels):
    program = super().row_program(cond_channels)
    if not self.with_extra:
      return program
    at = [node.name for node in program].index(self.after) + 1
    readers = [node._replace(inputs=tuple(('extra' if source == self.after else source, rule)
                                          for source, rule in node.inputs))
               for node in program[at:]]
    extra = self.extra.nodes('extra', program[at - 1].scale, self.after, self.a)
    return program[:at] + extra + readers


class RowSamplingTest(tf.test.TestCase, parameterized.TestCase):

  def test_dependencies_are_the_hand_derived_rows(self):
    network = pixelcnn.PixelCNN(filters=4, layers_per_block=1, num_resolutions=3)
    deps = row_sampling.dependencies(network.row_program(1), 28)
    k28, k14, k7 = np.arange(28), np.arange(14), np.arange(7)
    expected = {
        'logits': k28,
        'u': k28 - 1, 'ul': k28,  # down_shift: the u stream sees the rows above.
        'down0/0/u': k28 - 1, 'down0/0/ul': k28,
        # Stride 2, one zero row on top: row k reads rows 2k - 1 and 2k.
        'down1/u': 2 * k14 - 1, 'down1/0/ul': 2 * k14,
        'down2/0/u': 4 * k7 - 1, 'down2/0/ul': 4 * k7, 'up0/0/ul': 4 * k7,
        # Transposed: row m reads row m // 2, so pairs of rows become final together.
        'up1/u': 4 * (k14 // 2) - 1, 'up1/ul': 4 * (k14 // 2),
        'up1/0/u': 2 * k14 - 1,  # Its skip input from the down pass is a row later.
        'up2/u': 2 * (k28 // 2) - 1, 'up2/ul': 2 * (k28 // 2), 'up2/0/u': k28 - 1,
    }
    for name, rows in expected.items():
      # Rows that depend on no image row (only on z) are -1, however far above.
      self.assertAllEqual(np.maximum(rows, -1), deps[name], msg=name)

  def test_schedule_of_28_rows(self):
    network = pixelcnn.PixelCNN(filters=4, layers_per_block=1, num_resolutions=3)
    schedule = row_sampling.Schedule(network.row_program(1), 28)
    self.assertEqual(schedule.period, 4)
    self.assertEqual((schedule.start, schedule.groups), (0, 7))  # All rows in the loop.
    live = {r: {step.name: (step.a, step.b) for step in schedule.live[r]} for r in (4, 5)}
    # Drawing row 4 reads row 1 of the 7x7 ul stream (4 = 4 * 1) and row 2 at 14x14; the
    # u stream is never recomputed per pixel.
    self.assertEqual(live[4]['down2/0/ul'], (1, 2))
    self.assertEqual(live[4]['down1/0/ul'], (2, 3))
    self.assertEqual(live[4]['up2/ul'], (4, 5))
    self.assertFalse([name for r in (4, 5) for name in live[r] if name.endswith('/u')])
    # Row 5 only recomputes rows at 28x28.
    self.assertEqual({schedule.nodes[name].scale for name in live[5]}, {1})
    final = {step.name: (step.a, step.b) for step in schedule.final[4]}
    self.assertEqual(final['u'], (5, 6))  # u row 5 sees image rows up to 4.
    self.assertEqual(final['up1/ul'], (2, 4))  # Both rows from 7x7 row 1.

  @parameterized.named_parameters(
      ('one_resolution_8x8', 8, 1, 1, 3), ('one_resolution_two_layers_8x8', 8, 2, 1, 3),
      ('two_resolutions_8x8', 8, 1, 2, 3), ('two_resolutions_two_layers_12x12', 12, 2, 2, 3),
      ('three_resolutions_8x8', 8, 1, 3, 3),
      # An odd number of rows (3, 7) at the lowest resolution. Small batches: the naive
      # sampler is one pass per pixel.
      ('three_resolutions_two_layers_12x12', 12, 2, 3, 2),
      ('three_resolutions_28x28', 28, 1, 3, 1))
  def test_fast_samples_equal_naive_samples(self, height, layers_per_block,
                                            num_resolutions, batch):
    network = _random_network(height, layers_per_block, num_resolutions)
    cond = _normal([batch, height, height, 1], 1)
    u = tf.random.stateless_uniform([batch, height, height, 1], seed=[2, 3])
    x, logits = tf.function(network.sample_raster)(u, cond)
    x, logits = x.numpy(), logits.numpy()
    # Every pixel is drawn with its own logit, which is the logit of a full pass over the
    # finished image: together, the naive sampler's pixels (by induction over pixels).
    self.assertAllEqual(x, (u < tf.sigmoid(logits)).numpy().astype(np.float32))
    self.assertAllClose(network(x, cond), logits, rtol=0., atol=1e-5)
    self.assertGreater(np.mean(np.abs(logits) < 2.), .5)  # Not saturated.
    self.assertBetween(x.mean(), .2, .8)
    dist = distribution.PixelCNNBernoulli(network, cond, (height, height, 1))
    self.assertAllEqual(tf.function(dist.sample_naive)(u), x)

  def test_a_layer_added_to_the_description_changes_both_passes(self):
    height = 8
    network = _random_network(height, 1, 2, network_class=functools.partial(
        _WithExtraLayer, 'down1/0/ul', ('down1/0/u',)))
    program = network.row_program(1)
    deps = row_sampling.dependencies(program, height)
    self.assertAllEqual(deps['extra'], 2 * np.arange(height // 2))  # Like the ul stream.
    live = row_sampling.Schedule(program, height).live[2]
    self.assertIn('extra', {step.name for step in live})  # Recomputed per pixel of row 2.
    cond = _normal([3, height, height, 1], 1)
    u = tf.random.stateless_uniform([3, height, height, 1], seed=[2, 3])
    x, logits = tf.function(network.sample_raster)(u, cond)
    x, logits = x.numpy(), logits.numpy()
    self.assertAllEqual(x, (u < tf.sigmoid(logits)).numpy().astype(np.float32))
    self.assertAllClose(network(x, cond), logits, rtol=0., atol=1e-5)
    self.assertBetween(x.mean(), .2, .8)
    dist = distribution.PixelCNNBernoulli(network, cond, (height, height, 1))
    self.assertAllEqual(tf.function(dist.sample_naive)(u), x)
    # Without the layer, the same weights otherwise, the parallel pass gives other logits
    # than the ones the fast sampler drew with: both followed the layer.
    network.with_extra = False
    self.assertGreater(np.abs(network(x, cond).numpy() - logits).max(), .1)

  def test_sample_fast_falls_back_to_naive_without_sample_raster(self):
    network = _random_network(8, 1, 2)
    cond = _normal([2, 8, 8, 1], 4)
    u = tf.random.stateless_uniform([2, 8, 8, 1], seed=[5, 6])

    class Raster:
      """A network with its own raster sampler, here drawing all ones."""

      def __call__(self, x, cond):
        return network(x, cond)

      def sample_raster(self, uniforms, cond):
        del cond  # Unused.
        return tf.ones_like(uniforms), tf.zeros_like(uniforms)

    def plain(x, cond):
      return network(x, cond)

    shape = (8, 8, 1)
    self.assertAllEqual(distribution.PixelCNNBernoulli(Raster(), cond, shape).sample_fast(u),
                        tf.ones_like(u))
    naive = tf.function(distribution.PixelCNNBernoulli(network, cond, shape).sample_naive)(u)
    self.assertBetween(naive.numpy().mean(), .2, .8)
    fallback = tf.function(distribution.PixelCNNBernoulli(plain, cond, shape).sample_fast)(u)
    self.assertAllEqual(fallback, naive)


def _log_sigmoid(x):
  return -np.logaddexp(0., -x)


class PixelCNNDecoderTest(tf.test.TestCase):

  image_shape = (8, 8, 1)
  latent_size = 3

  def _decoder(self, num_resolutions=3):
    tf_keras.utils.set_random_seed(1)
    return decoders.PixelCNNDecoder(
        image_shape=self.image_shape,
        network=lambda: pixelcnn.PixelCNN(filters=8, layers_per_block=1,
                                          num_resolutions=num_resolutions))

  def test_shapes(self):
    dist = self._decoder()(_normal([2, self.latent_size], 0))
    self.assertEqual(dist.batch_shape, [2])
    self.assertEqual(dist.event_shape, self.image_shape)

  def test_log_prob_is_sum_of_bernoulli_log_probs_of_own_logits(self):
    dist = self._decoder()(_normal([2, self.latent_size], 0))
    x = _binary([2, *self.image_shape], 1)
    logits = dist.logits(x).numpy().astype(np.float64)
    xn = x.numpy()
    expected = np.sum(xn * _log_sigmoid(logits) + (1. - xn) * _log_sigmoid(-logits),
                      axis=(1, 2, 3))
    self.assertAllClose(expected, dist.log_prob(x), rtol=1e-5, atol=1e-4)

  def test_compiled_log_prob_equals_eager(self):
    # Evaluation runs log_prob alone in a tf.function; a forward-only graph of this network
    # once crashed tensorflow's oneDNN graph rewrite (see `row_sampling.band`).
    dist = self._decoder()(_normal([2, self.latent_size], 10))
    x = _binary([2, *self.image_shape], 11)
    self.assertAllClose(dist.log_prob(x), tf.function(dist.log_prob)(x), rtol=1e-5,
                        atol=1e-4)

  def test_sample_naive_equals_hand_written_raster_loop(self):
    dist = self._decoder()(_normal([2, self.latent_size], 2))
    u = tf.random.stateless_uniform([2, *self.image_shape], seed=[3, 4])
    height, width, _ = self.image_shape
    # Compiled only to be fast: one network pass per pixel on each side.
    logits_fn = tf.function(dist.logits)
    x = np.zeros([2, height, width, 1], np.float32)
    logits_when_drawn = np.zeros_like(x)
    for i in range(height * width):
      r, c = divmod(i, width)
      logits = logits_fn(tf.constant(x))
      logits_when_drawn[:, r, c] = logits[:, r, c]
      x[:, r, c] = (u[:, r, c] < tf.sigmoid(logits[:, r, c])).numpy().astype(np.float32)
    sample = tf.function(dist.sample_naive)(u)
    self.assertAllEqual(x, sample)
    self.assertGreater(x.sum(), 0.)  # Neither all 0 nor all 1: the test has teeth.
    self.assertLess(x.sum(), x.size)
    # Causality again: the logits of the finished image are those each pixel was drawn with.
    self.assertAllClose(logits_when_drawn, dist.logits(sample), rtol=0., atol=1e-5)

  def test_sample_consumes_the_documented_uniforms(self):
    # Two resolutions: a smaller graph to build for the fast sampler than with three.
    dist = self._decoder(num_resolutions=2)(_normal([2, self.latent_size], 5))
    seed = tf.constant([6, 7], tf.int32)

    @tf.function
    def both():
      return dist.sample_naive(dist.uniforms(seed)), dist.sample(seed=seed)

    naive, sample = both()
    self.assertAllEqual(naive, sample)

  def test_z_reaches_every_pixel(self):
    decoder = self._decoder()
    height, width, _ = self.image_shape
    n = height * width
    z = tf.tile(_normal([1, self.latent_size], 8), [n, 1])
    x = tf.tile(_binary([1, *self.image_shape], 9), [n, 1, 1, 1])
    with tf.GradientTape() as tape:
      tape.watch(z)
      logits = tf.reshape(decoder(z).logits(x), [n, n])
      diagonal = tf.linalg.diag_part(logits)  # Copy i contributes its logit i only.
    d_z = tape.gradient(diagonal, z).numpy()
    self.assertTrue(np.all(np.abs(d_z).max(axis=1) > 0.), msg=str(np.abs(d_z).max(axis=1)))


if __name__ == '__main__':
  tf.test.main()
