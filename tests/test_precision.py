"""Mixed precision (`train.mixed_precision`): 16-bit networks, float32 densities.

Run here with 'mixed_bfloat16', which this CPU executes (float16 is for GPUs). From the same
initial variables, the 16-bit model's rate and distortion must equal the float32 model's
within bfloat16 rounding; variables, z and the metrics stay float32; training steps are
finite and sampling works; the global policy is restored afterwards. Two families cover every part: `++v`
(IAF encoder, PixelCNN, VampPrior) and `+-+` (deconvolutions, MAF marginal).
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tf_keras

from brokenelbo.models import vae as model
from brokenelbo.training import losses
from brokenelbo.training import step as step_lib
from brokenelbo.utils import cli
from brokenelbo.utils import seeds


def _trainer(precision):
  tf_keras.utils.set_random_seed(0)
  return step_lib.Trainer(model.VAE, losses.rate_distortion_loss, tf.distribute.get_strategy(),
                          total_steps=100, steps_per_epoch=10, seed=0,
                          mixed_precision=precision, loss_scale=8.)


class MixedPrecisionTest(tf.test.TestCase, parameterized.TestCase):

  # `++v` has every kind of network: the IAF's MADEs, the PixelCNN, the VampPrior.
  @parameterized.parameters(('++v',))
  def test_bfloat16_matches_float32(self, family):
    cli.parse_gin([f'configs/{family}.gin', 'configs/smoke.gin'], [])
    full, mixed = _trainer(None), _trainer('mixed_bfloat16')
    self.assertEqual(tf_keras.mixed_precision.global_policy().name, 'float32')
    compute = {layer.compute_dtype for module in mixed.vae.submodules
               if isinstance(module, tf_keras.layers.Layer) for layer in [module]}
    self.assertIn('bfloat16', compute)
    self.assertNotIn('bfloat16', {layer.compute_dtype for layer in full.vae.submodules
                                  if isinstance(layer, tf_keras.layers.Layer)})
    self.assertTrue(all(v.dtype == tf.float32 for v in mixed.variables))
    for a, b in zip(full.variables, mixed.variables):  # The same initial variables.
      self.assertAllEqual(a, b)
    x = tf.constant((np.random.RandomState(0).rand(8, 28, 28, 1) < .3).astype(np.float32))
    seed = seeds.step_seed(0, 0)
    rate, distortion = full.vae.rate_distortion(x, seed)
    rate_16, distortion_16 = mixed.vae.rate_distortion(x, seed)
    self.assertEqual(rate_16.dtype, tf.float32)
    self.assertEqual(distortion_16.dtype, tf.float32)
    # bfloat16 keeps 8 significant bits: about 0.4% per operation.
    self.assertAllClose(distortion_16, distortion, rtol=0.03)
    self.assertAllClose(rate_16, rate, rtol=0.1, atol=1.)
    iterator = mixed.distribute(tf.data.Dataset.from_tensors(x).repeat())
    means, good, _, grad_norm = mixed.train_steps(iterator, tf.constant(3))
    self.assertEqual(float(good), 3.)
    self.assertTrue(np.all(np.isfinite(means.numpy())) and np.isfinite(float(grad_norm)))
    # The decoder's sampler runs in 16 bits too (compiled: eagerly, the naive PixelCNN
    # sampler's loop of 784 network passes would run op by op).
    _, samples = tf.function(lambda: mixed.vae.generate(2, seed))()
    self.assertEqual(samples.dtype, tf.float32)
    self.assertAllInSet(samples, [0., 1.])
