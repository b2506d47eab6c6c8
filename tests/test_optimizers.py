"""Tests for `optimizers`: per-variable gradient normalisation, Adam's first step, schedule.

After one Adam step from zero slots on a normalised gradient g_hat = g / ||g||:

  m = (1 - beta_1) g_hat,   v = (1 - beta_2) g_hat^2,
  var <- var - lr sqrt(1 - beta_2) / (1 - beta_1) * m / (sqrt(v) + epsilon).
"""

import numpy as np
import tensorflow as tf

from brokenelbo.training import optimizers


def _gradients():
  rng = np.random.RandomState(0)
  return [tf.constant(rng.randn(3, 2).astype(np.float32) * 5.),
          tf.constant(rng.randn(4).astype(np.float32) * 0.01),
          tf.constant([[7.]])]


class NormalizeGradientsTest(tf.test.TestCase):

  def test_unit_norm_per_variable(self):
    gradients = _gradients()
    normalized = optimizers.normalize_gradients(gradients)
    for g, n in zip(gradients, normalized):
      self.assertEqual(g.shape, n.shape)
      norm = np.linalg.norm(g.numpy().astype(np.float64))
      # ||n|| = ||g|| / (||g|| + epsilon): 1 but for epsilon = 1e-8 (5e-7 for ||g|| = 0.02).
      self.assertAllClose(norm / (norm + 1e-8), tf.norm(n), rtol=1e-6, atol=0.)
      self.assertAllClose(1., tf.norm(n), rtol=1e-5, atol=0.)
      # Only the length changes: n = g / ||g||.
      self.assertAllClose(g.numpy() / norm, n, rtol=1e-5, atol=1e-7)

  def test_none_and_zero_gradients(self):
    normalized = optimizers.normalize_gradients([None, tf.zeros([2])])
    self.assertIsNone(normalized[0])
    self.assertAllEqual([0., 0.], normalized[1])  # epsilon: no NaN.


class NormalizedAdamTest(tf.test.TestCase):

  def test_first_step_slots_and_update(self):
    beta_1, beta_2, learning_rate, epsilon = 0.8, 0.99, 0.1, 1e-8
    optimizer = optimizers.normalized_adam(total_steps=10, learning_rate=learning_rate,
                                           beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)
    rng = np.random.RandomState(1)
    initial = [rng.randn(3, 2).astype(np.float32), rng.randn(4).astype(np.float32),
               np.array([[0.5]], np.float32)]
    variables = [tf.Variable(v) for v in initial]
    optimizer.build(variables)
    gradients = _gradients()
    optimizer.apply_gradients(zip(optimizers.normalize_gradients(gradients), variables))
    self.assertEqual(1, int(optimizer.iterations))
    for i, (g, var, var0) in enumerate(zip(gradients, variables, initial)):
      g_hat = g.numpy().astype(np.float64) / np.linalg.norm(g.numpy())
      # Adam's public variables: the step, then each variable's slots m and v.
      m, v = optimizer.variables[1 + 2 * i], optimizer.variables[2 + 2 * i]
      self.assertEqual([m.name, v.name], [f'm/{var.name}', f'v/{var.name}'])
      self.assertEqual(m.shape, var.shape)
      self.assertAllClose((1. - beta_1) * g_hat, m, rtol=1e-5, atol=1e-7)
      self.assertAllClose((1. - beta_2) * g_hat**2, v, rtol=1e-5, atol=1e-9)
      alpha = learning_rate * np.sqrt(1. - beta_2) / (1. - beta_1)
      m_expected = (1. - beta_1) * g_hat
      v_expected = (1. - beta_2) * g_hat**2
      expected = var0 - alpha * m_expected / (np.sqrt(v_expected) + epsilon)
      self.assertAllClose(expected, var, rtol=1e-5, atol=1e-6)
      # The first step moves every coordinate by about lr against its gradient's sign.
      self.assertAllClose(-learning_rate * np.sign(g.numpy()), var.numpy() - var0,
                          rtol=1e-3, atol=1e-6)

  def test_learning_rate_follows_schedule(self):
    optimizer = optimizers.normalized_adam(total_steps=10, learning_rate=3e-4)
    self.assertAllClose(3e-4, optimizer.learning_rate, rtol=1e-6, atol=0.)
    config = optimizer.get_config()['learning_rate']
    self.assertEqual('ConstantThenLinearDecay', config['class_name'])
    schedule = optimizers.ConstantThenLinearDecay.from_config(config['config'])
    self.assertEqual(5, schedule.decay_start)  # decay_start_fraction 0.5 of 10 steps.
    self.assertAllClose(1.5e-4, schedule(7.5), rtol=1e-6, atol=0.)


class ConstantThenLinearDecayTest(tf.test.TestCase):

  def test_values(self):
    schedule = optimizers.ConstantThenLinearDecay(2., total_steps=10, decay_start=5)
    for step, expected in ((0, 2.), (3, 2.), (5, 2.), (6, 1.6), (7, 1.2), (9, 0.4),
                           (10, 0.), (12, 0.)):
      self.assertAllClose(expected, schedule(tf.constant(step, tf.int64)), rtol=1e-6,
                          atol=1e-7, msg=step)

  def test_no_decay_span(self):
    # decay_start == total_steps: constant through training, no division by zero.
    schedule = optimizers.ConstantThenLinearDecay(1., total_steps=4, decay_start=4)
    self.assertAllClose([1., 1., 1., 1., 1., 0.], [schedule(s) for s in range(6)], rtol=0.,
                        atol=0.)

  def test_config_round_trip(self):
    schedule = optimizers.ConstantThenLinearDecay(3e-4, total_steps=100, decay_start=50)
    copy = optimizers.ConstantThenLinearDecay.from_config(schedule.get_config())
    for step in (0, 50, 75, 100):
      self.assertAllClose(schedule(step), copy(step), rtol=0., atol=0.)


if __name__ == '__main__':
  tf.test.main()
