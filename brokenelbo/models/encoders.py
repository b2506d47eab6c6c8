"""Encoders e(z|x): gated convolutional networks to a diagonal Gaussian, optionally an IAF.

The `-` encoder of the paper (Appendix F) is five gated convolutions to a diagonal Gaussian;
the `+` encoder transforms that Gaussian by 4 shift-only IAF steps (`flows.ShiftOnlyFlow`).
Calling an encoder returns a `tfd.Distribution` over z with batch shape `[B]` and event shape
`[latent_size]`. The encoder takes images of any size and channels that its convolutions fit
(`ConvEncoder.check_image_shape`): the read-outs take the last layer's map, whatever its
size (1x1 for 28x28 images and Appendix F's layers, 2x2 for 32x32).
"""

import gin
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.models import layers

tfd = tfp.distributions

# Appendix F: Conv(depth, kernel, stride, padding) for the encoder.
ENCODER_LAYERS = ((32, 5, 1, 'same'), (32, 5, 2, 'same'), (64, 5, 1, 'same'),
                  (64, 5, 2, 'same'), (256, 7, 1, 'valid'))


@gin.configurable
@domains.checked(min_scale=domains.NON_NEGATIVE)
class ConvEncoder(tf.Module):
  """Gaussian encoder e(z|x) = N(z; loc(x), diag(scale(x)^2)), optionally flowed.

  The image is scaled to [-1, 1] and passed through gated convolutions; a linear read-out
  gives `loc` and a linear read-out with softplus gives `scale`. With `flow`, the Gaussian is
  pushed through a shift-only IAF (volume preserving), and e(z|x) is the resulting
  `tfd.TransformedDistribution`.

  Args:
    latent_size: Python `int`, dimension of z (paper: 64).
    conv_layers: Python `tuple` of `(depth, kernel, stride, padding)` per gated conv layer.
    flow: `None` or a callable `flow(event_size=...)` returning an object with a
      `.bijector` (e.g. `@ShiftOnlyFlow` with `inverse=True`): the `+` encoder.
    min_scale: Python `float` added to the softplus scale for numerical safety.
  """

  def __init__(self, latent_size, conv_layers=ENCODER_LAYERS, flow=None, min_scale=1e-4,
               name=None):
    super().__init__(name=name)
    self.latent_size = latent_size
    self.conv_layers = tuple(tuple(spec) for spec in conv_layers)
    self.convs = [layers.GatedConv2D(*spec) for spec in self.conv_layers]
    self.loc = tf_keras.layers.Dense(latent_size)
    self.scale = tf_keras.layers.Dense(latent_size)
    self.min_scale = min_scale
    self.flow = flow(event_size=latent_size) if flow is not None else None

  def check_image_shape(self, image_shape):
    """Raises a `UserError` naming `ConvEncoder.conv_layers` unless its convolutions fit
    images of `image_shape` `(H, W, C)`: every 'valid' layer's input at least its kernel
    ('same' layers give `ceil(size / stride)`, 'valid' ones `(size - kernel) // stride + 1`)."""
    sizes = tuple(image_shape[:2])
    for number, (depth, kernel, stride, padding) in enumerate(self.conv_layers, 1):
      if padding == 'valid' and min(sizes) < kernel:
        raise errors.UserError(
            f'ConvEncoder.conv_layers do not fit {image_shape[0]}x{image_shape[1]} images: '
            f'layer {number} {(depth, kernel, stride, padding)} gets '
            f'{sizes[0]}x{sizes[1]} maps, smaller than its kernel; bind '
            'ConvEncoder.conv_layers for this size (Appendix F\'s need at least 25x25)')
      sizes = tuple(-(-size // stride) if padding == 'same' else (size - kernel) // stride + 1
                    for size in sizes)

  def gaussian(self, x):
    """The diagonal Gaussian before the flow, `tfd.MultivariateNormalDiag`."""
    h = 2. * x - 1.
    for conv in self.convs:
      h = conv(h)
    h = tf.reshape(h, [-1, h.shape[1] * h.shape[2] * h.shape[3]])
    # Read-outs in float32 even under a mixed-precision policy: densities need it.
    loc = tf.cast(self.loc(h), tf.float32)
    scale = tf.nn.softplus(tf.cast(self.scale(h), tf.float32)) + self.min_scale
    return tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)

  def __call__(self, x):
    gaussian = self.gaussian(x)
    if self.flow is None:
      return gaussian
    return tfd.TransformedDistribution(gaussian, self.flow.bijector)
