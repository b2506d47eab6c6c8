"""`PixelCNNBernoulli`: the distribution over binary images that a causal network defines.

`log_prob` is one parallel pass of the network; `sample` draws pixels in raster order,
by the network's fast row sampler where it has one (`network.PixelCNN.sample_raster`).
"""

import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

tfd = tfp.distributions


class PixelCNNBernoulli(tfd.Distribution):
  """Distribution over binary images defined by a causal network's Bernoulli logits.

  `log_prob(x)` is one parallel pass of the network over x. `sample()` draws pixels in
  raster order: one uniform u_i per pixel is drawn from the (stateless) seed, and pixel i is
  set to `u_i < sigmoid(logit_i(x_{<i}))`. The same seed therefore gives the same image for
  any sampler that consumes the same u: `sample_naive` recomputes the whole network once
  per pixel; `sample_fast`, which `sample()` uses, lets a network that has a
  `sample_raster(uniforms, cond)` method (`pixelcnn.PixelCNN`: about one row of every
  layer per pixel) draw the pixels itself, and falls back to `sample_naive` otherwise.

  Args:
    network: callable `network(x, cond) -> logits` with `x`, `logits` of shape
      `[B, H, W, 1]`, causal in raster order; optionally with a method
      `sample_raster(uniforms, cond) -> (x, logits)` drawing the same pixels as
      `sample_naive` (and returning the logit each was drawn with).
    cond: `Tensor` `[B, H, W, C]`, the conditioning map (any dependence on z).
    image_shape: Python `tuple` `(H, W, 1)`.
  """

  def __init__(self, network, cond, image_shape, validate_args=False, name='PixelCNN'):
    parameters = dict(locals())
    self._network = network
    self._cond = cond
    self._image_shape = tuple(image_shape)
    super().__init__(dtype=tf.float32,
                     reparameterization_type=tfd.NOT_REPARAMETERIZED,
                     validate_args=validate_args, allow_nan_stats=True,
                     parameters=parameters, name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return dict()

  def _batch_shape(self):
    return self._cond.shape[:1]

  def _batch_shape_tensor(self):
    return tf.shape(self._cond)[:1]

  def _event_shape(self):
    return tf.TensorShape(self._image_shape)

  def _event_shape_tensor(self):
    return tf.constant(self._image_shape, dtype=tf.int32)

  def logits(self, x):
    """Bernoulli logits of every pixel given the image `x` `[B, H, W, 1]` (one pass)."""
    return tf.cast(self._network(x, self._cond), tf.float32)  # float32 under any policy.

  def _log_prob(self, x):
    logits = self.logits(x)
    return -tf.reduce_sum(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=x, logits=logits), axis=[1, 2, 3])

  def uniforms(self, seed):
    """The per-pixel uniforms `[B, H, W, 1]` that `sample(seed=seed)` consumes."""
    seed = tfp.random.sanitize_seed(seed, salt='PixelCNNBernoulli')
    shape = tf.concat([tf.shape(self._cond)[:1], self._image_shape], axis=0)
    return tf.random.stateless_uniform(shape, seed=seed)

  def _sample_n(self, n, seed=None):
    if tf.get_static_value(n) != 1:
      raise NotImplementedError('PixelCNNBernoulli draws one sample per batch member; '
                                'tile z for more.')
    return self.sample_fast(self.uniforms(seed))[tf.newaxis]

  def sample_fast(self, uniforms):
    """Raster-order sampling by the network's `sample_raster` if any, else `sample_naive`
    (also under a 16-bit mixed-precision policy, which `sample_raster` does not support).

    Args:
      uniforms: `Tensor` `[B, H, W, 1]`, the uniform of every pixel (see `uniforms`).

    Returns:
      `Tensor` `[B, H, W, 1]`, the same pixels as `sample_naive(uniforms)`.
    """
    sample_raster = getattr(self._network, 'sample_raster', None)
    if sample_raster is None or not _computes_in_float32(self._network):
      return self.sample_naive(uniforms)
    x, _ = sample_raster(uniforms, self._cond)
    return x

  def sample_naive(self, uniforms):
    """Raster-order sampling, one full network pass per pixel."""
    height, width, _ = self._image_shape
    num_pixels = height * width
    flat_index = tf.reshape(tf.range(num_pixels), [1, height, width, 1])

    def body(i, x):
      logits = self.logits(x)
      pixel = tf.cast(uniforms < tf.sigmoid(logits), x.dtype)
      return i + 1, tf.where(tf.equal(flat_index, i), pixel, x)

    _, x = tf.while_loop(lambda i, _: i < num_pixels, body,
                         (tf.constant(0), tf.zeros_like(uniforms)))
    return x


def _computes_in_float32(network):
  layers_ = getattr(network, 'submodules', ())
  return all(layer.compute_dtype == 'float32' for layer in layers_
             if isinstance(layer, tf_keras.layers.Layer))
