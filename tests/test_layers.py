"""Tests for `layers.GatedConv2D`'s matrix-product forms and `bench.step_flops`.

The rewrites must compute the Keras convolution they replace: values and gradients are
compared with the same layer under `layers.reference_convolutions()`, on random kernels and
biases. FLOP counts are compared with closed forms for a graph of known convolutions.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf

from brokenelbo.experiments import bench
from brokenelbo.models import layers


def _normal(shape, seed):
  return tf.constant(np.random.RandomState(seed).randn(*shape).astype(np.float32))


class GatedConv2DTest(tf.test.TestCase, parameterized.TestCase):

  @parameterized.named_parameters(
      # (input size, channels, depth, kernel, stride, padding, transpose, rewrite)
      ('whole_input_conv', 7, 3, 4, 7, 1, 'valid', False, '_whole_input_conv'),
      ('whole_input_conv_strided', 5, 2, 3, 5, 2, 'valid', False, '_whole_input_conv'),
      ('one_pixel_deconv', 1, 5, 3, 7, 1, 'valid', True, '_one_pixel_deconv'),
      ('one_pixel_deconv_strided', 1, 4, 2, 3, 2, 'valid', True, '_one_pixel_deconv'),
  )
  def test_rewrite_matches_keras_convolution(self, size, channels, depth, kernel, stride,
                                             padding, transpose, rewrite):
    layer = layers.GatedConv2D(depth, kernel, stride, padding, transpose=transpose)
    x = _normal([3, size, size, channels], 0)
    layer(x)
    self.assertEqual(layer._rewrite.__name__, rewrite)
    for i, variable in enumerate(layer.trainable_variables):
      variable.assign(_normal(variable.shape, i + 1))

    def value_and_gradients(reference):
      with tf.GradientTape() as tape:
        tape.watch(x)
        if reference:
          with layers.reference_convolutions():
            y = layer(x)
        else:
          y = layer(x)
        loss = tf.reduce_sum(y * _normal(y.shape, 9))
      return [y] + tape.gradient(loss, [x] + layer.trainable_variables)

    for fast, reference in zip(value_and_gradients(False), value_and_gradients(True)):
      self.assertEqual(fast.shape, reference.shape)
      self.assertAllClose(fast, reference, rtol=1e-5, atol=1e-5)

  @parameterized.parameters((14, 5, 1, 'same', False), (7, 5, 2, 'same', True),
                            (9, 7, 1, 'valid', False))
  def test_other_convolutions_are_not_rewritten(self, size, kernel, stride, padding,
                                                transpose):
    layer = layers.GatedConv2D(2, kernel, stride, padding, transpose=transpose)
    layer(tf.zeros([1, size, size, 3]))
    self.assertIsNone(layer._rewrite)


class StepFlopsTest(tf.test.TestCase):

  def test_counts_convolutions_their_gradients_and_matmuls(self):
    x = tf.zeros([2, 8, 8, 3])
    conv_kernel = tf.Variable(tf.zeros([3, 3, 3, 5]))
    deconv_kernel = tf.Variable(tf.zeros([4, 4, 6, 5]))  # [k, k, out, in]
    dense = tf.Variable(tf.zeros([7, 4]))

    @tf.function
    def step(x):
      with tf.GradientTape() as tape:
        h = tf.nn.conv2d(x, conv_kernel, 2, 'SAME')  # [2, 4, 4, 5]
        y = tf.nn.conv2d_transpose(h, deconv_kernel, [2, 8, 8, 6], 2, 'SAME')
        z = tf.matmul(tf.reshape(y, [-1, 6])[:, :4], dense[:4])  # [128, 4] x [4, 4]
        loss = tf.reduce_sum(z)
      return loss, tape.gradient(loss, [conv_kernel, deconv_kernel, dense])

    graph = step.get_concrete_function(x).graph
    # Forward and filter gradient: the graph also holds x's gradient, which nothing needs.
    conv = 2 * (2 * 4 * 4 * 5) * 3 * 3 * 3
    deconv = 2 * (2 * 4 * 4 * 5) * 4 * 4 * 6  # forward, input and filter gradients
    matmul = 2 * 128 * 4 * 4  # forward, and gradients with respect to both factors
    types = [op.type for op in graph.get_operations()]
    self.assertEqual(types.count('Conv2DBackpropInput'), 2)  # The deconv's and x's gradient.
    self.assertEqual(types.count('MatMul'), 3)
    self.assertEqual(bench.step_flops(graph), 2 * conv + 3 * deconv + 3 * matmul)


if __name__ == '__main__':
  tf.test.main()
