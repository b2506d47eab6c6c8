"""Decoders d(x|z): distributions over binary 28x28x1 images given a latent code.

- `-`: `DeconvDecoder`, six gated deconvolutions to independent Bernoulli pixels.
- `+`: `PixelCNNDecoder`, an autoregressive PixelCNN++-style network conditioned on z.

Calling a decoder on z `[B, latent_size]` returns a `tfd.Distribution` with batch shape
`[B]` and event shape `[28, 28, 1]`.
"""

import gin
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from brokenelbo import domains
from brokenelbo.models import layers
from brokenelbo.models.pixelcnn import distribution
from brokenelbo.models.pixelcnn import network as pixelcnn

tfd = tfp.distributions

# Appendix F: Deconv(depth, kernel, stride, padding) for the `-` decoder.
DECODER_LAYERS = ((64, 7, 1, 'valid'), (64, 5, 1, 'same'), (64, 5, 2, 'same'),
                  (32, 5, 1, 'same'), (32, 5, 2, 'same'), (32, 4, 1, 'same'))


@gin.configurable
@domains.checked(output_kernel=domains.POSITIVE_INT)
class DeconvDecoder(tf.Module):
  """Factorised decoder d(x|z) = prod_i Bernoulli(x_i; sigmoid(f_i(z))).

  Args:
    deconv_layers: Python `tuple` of `(depth, kernel, stride, padding)` per gated
      deconvolution, starting from z as a 1x1 image.
    output_kernel: Python `int`, kernel of the final linear convolution to one channel.
  """

  def __init__(self, deconv_layers=DECODER_LAYERS, output_kernel=1, name=None):
    super().__init__(name=name)
    self.deconvs = [layers.GatedConv2D(*spec, transpose=True) for spec in deconv_layers]
    self.out = tf_keras.layers.Conv2D(1, output_kernel, padding='same')

  def __call__(self, z):
    h = z[:, tf.newaxis, tf.newaxis, :]
    for deconv in self.deconvs:
      h = deconv(h)
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
    image_shape: Python `tuple` `(H, W, 1)`.
    network: callable returning the network (`@PixelCNN`, configured there).
  """

  def __init__(self, image_shape=(28, 28, 1), network=pixelcnn.PixelCNN, name=None):
    super().__init__(name=name)
    self.image_shape = tuple(image_shape)
    height, width, _ = self.image_shape
    self.cond = layers.GatedDense(height * width)
    self.network = network()

  def __call__(self, z):
    cond = tf.reshape(self.cond(z), [-1, self.image_shape[0], self.image_shape[1], 1])
    return distribution.PixelCNNBernoulli(self.network, cond, self.image_shape)
