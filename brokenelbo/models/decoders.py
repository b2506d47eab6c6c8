"""Decoders d(x|z): distributions over binary images given a latent code.

- `-`: `DeconvDecoder`, six gated deconvolutions to independent Bernoulli pixels.
- `+`: `PixelCNNDecoder`, an autoregressive PixelCNN++-style network conditioned on z.

Calling a decoder on z `[B, latent_size]` returns a `tfd.Distribution` with batch shape
`[B]` and event shape `image_shape`, `[28, 28, 1]` (MNIST, Omniglot) unless bound otherwise
(`configs/images.gin` binds it to the data's, `@example_shape()`). `check_image_shape`
says, before training, whether a decoder models the data's images.
"""

import gin
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.models import layers
from brokenelbo.models.pixelcnn import distribution
from brokenelbo.models.pixelcnn import network as pixelcnn

tfd = tfp.distributions

# Appendix F: Deconv(depth, kernel, stride, padding) for the `-` decoder.
DECODER_LAYERS = ((64, 7, 1, 'valid'), (64, 5, 1, 'same'), (64, 5, 2, 'same'),
                  (32, 5, 1, 'same'), (32, 5, 2, 'same'), (32, 4, 1, 'same'))


def deconv_output_size(deconv_layers, size=1):
  """The side of the image that `(depth, kernel, stride, padding)` transposed convolutions
  make of a `size x size` input: 'same' multiplies by the stride, 'valid' gives
  `(size - 1) * stride + kernel`."""
  for _, kernel, stride, padding in deconv_layers:
    size = size * stride if padding == 'same' else (size - 1) * stride + kernel
  return size


def fit_deconv_layers(deconv_layers, height, width):
  """The layers of `deconv_layers`, resized to make images of at least `height x width`.

  Appendix F's first deconvolution is a 'valid' one of stride 1 that turns z, a 1x1
  image, into a 7x7 map, which the later layers upsample 4 times to 28x28. When the
  layers do not make `height x width` images as they are, that first kernel becomes the
  least k whose square output covers both sides (`ceil(max(height, width) / 4)` for the
  paper's layers), and the caller crops the output to `height x width` at its centre.

  Returns:
    layers: Python `tuple` of `(depth, kernel, stride, padding)`.
    size: Python `int`, the side of their (square) output.

  Raises:
    UserError: if the layers do not fit and their first is not a 'valid', stride-1 layer.
  """
  layers_ = tuple(tuple(spec) for spec in deconv_layers)
  size = deconv_output_size(layers_)
  if size == height == width:
    return layers_, size
  depth, _, stride, padding = layers_[0]
  if padding != 'valid' or stride != 1:
    raise errors.UserError(
        f'DeconvDecoder.deconv_layers make {size}x{size} images, not {height}x{width}, and '
        "their first layer is not the 'valid', stride-1 one that is resized to fit: bind "
        'DeconvDecoder.deconv_layers for this size')
  kernel = 1
  while deconv_output_size(layers_[1:], kernel) < max(height, width):
    kernel += 1
  layers_ = ((depth, kernel, 1, 'valid'),) + layers_[1:]
  return layers_, deconv_output_size(layers_)


def check_image_shape(configurable, declared, image_shape):
  """Raises a `UserError` naming `configurable.image_shape` unless `declared` is the data's
  `image_shape`."""
  if tuple(declared) != tuple(image_shape):
    raise errors.UserError(
        f'the data are {"x".join(map(str, image_shape))} images but {configurable}.image_shape '
        f'is {tuple(declared)}: bind {configurable}.image_shape = {tuple(image_shape)}, or '
        'to @example_shape() as configs/images.gin does')


@gin.configurable
@domains.checked(output_kernel=domains.POSITIVE_INT, image_shape=domains.IMAGE_SHAPE)
class DeconvDecoder(tf.Module):
  """Factorised decoder d(x|z) = prod_i Bernoulli(x_i; sigmoid(f_i(z))).

  z, as a 1x1 image, passes through gated deconvolutions to a square map, which a linear
  convolution turns into one logit per pixel and channel. For images other than the
  layers' own size (28x28 for Appendix F's), the first deconvolution's kernel is resized
  and the map cropped at its centre (`fit_deconv_layers`).

  Args:
    deconv_layers: Python `tuple` of `(depth, kernel, stride, padding)` per gated
      deconvolution, starting from z as a 1x1 image.
    output_kernel: Python `int`, kernel of the final linear convolution to the channels.
    image_shape: Python `tuple` `(H, W, C)`, the images modelled. Default `(28, 28, 1)`.
  """

  def __init__(self, deconv_layers=DECODER_LAYERS, output_kernel=1, image_shape=(28, 28, 1),
               name=None):
    super().__init__(name=name)
    self.image_shape = tuple(image_shape)
    height, width, channels = self.image_shape
    deconv_layers, size = fit_deconv_layers(deconv_layers, height, width)
    self.deconvs = [layers.GatedConv2D(*spec, transpose=True) for spec in deconv_layers]
    self.out = tf_keras.layers.Conv2D(channels, output_kernel, padding='same')
    self._crop = ((size - height) // 2, (size - width) // 2)

  def check_image_shape(self, image_shape):
    """Raises a `UserError` unless this decoder models images of `image_shape`."""
    check_image_shape('DeconvDecoder', self.image_shape, image_shape)

  def __call__(self, z):
    h = z[:, tf.newaxis, tf.newaxis, :]
    for deconv in self.deconvs:
      h = deconv(h)
    (top, left), (height, width) = self._crop, self.image_shape[:2]
    if h.shape[1] != height or h.shape[2] != width:
      h = h[:, top:top + height, left:left + width, :]
    logits = tf.cast(self.out(h), tf.float32)  # float32 under any precision policy.
    return tfd.Independent(tfd.Bernoulli(logits=logits, dtype=tf.float32),
                           reinterpreted_batch_ndims=3)


@gin.configurable
@domains.checked(image_shape=domains.IMAGE_SHAPE)
class PixelCNNDecoder(tf.Module):
  """Autoregressive decoder d(x|z) = prod_i Bernoulli(x_i; sigmoid(f_i(x_{<i}, z))).

  z passes through a gated dense layer to `H * W` units, reshaped to an `H x W x 1` map
  that conditions a `pixelcnn.network.PixelCNN` (see there for how it enters the network).

  Args:
    image_shape: Python `tuple` `(H, W, 1)`: one channel, and with the network's
      `num_resolutions` r, H and W multiples of 2^(r - 1) (each resolution halves them).
    network: callable returning the network (`@PixelCNN`, configured there).

  Raises:
    UserError: for an `image_shape` that the network cannot model.
  """

  def __init__(self, image_shape=(28, 28, 1), network=pixelcnn.PixelCNN, name=None):
    super().__init__(name=name)
    self.image_shape = tuple(image_shape)
    height, width, channels = self.image_shape
    if channels != 1:
      raise errors.UserError(f'PixelCNNDecoder.image_shape = {self.image_shape}: the '
                             'PixelCNN models images of one channel')
    self.cond = layers.GatedDense(height * width)
    self.network = network()
    halvings = getattr(self.network, 'num_resolutions', 1) - 1
    if height % 2**halvings or width % 2**halvings:
      raise errors.UserError(
          f'PixelCNNDecoder.image_shape = {self.image_shape}: the PixelCNN halves the '
          f'image {halvings} times (PixelCNN.num_resolutions = {halvings + 1}), so height '
          f'and width must be multiples of {2**halvings}; bind PixelCNN.num_resolutions '
          'lower, or use images of another size')

  def check_image_shape(self, image_shape):
    """Raises a `UserError` unless this decoder models images of `image_shape`."""
    check_image_shape('PixelCNNDecoder', self.image_shape, image_shape)

  def __call__(self, z):
    cond = tf.reshape(self.cond(z), [-1, self.image_shape[0], self.image_shape[1], 1])
    return distribution.PixelCNNBernoulli(self.network, cond, self.image_shape)
