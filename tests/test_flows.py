"""Tests for `flows.ShiftOnlyFlow`: invertibility, zero log-det, autoregressive structure.

Every step is y_i = x_i + mu_i(x_{<i}) (MAF) or its inverse (IAF), so the Jacobian of one step
is unit lower triangular and the whole chain, with reversal permutations between the steps,
has |det J| = 1 exactly.
"""

from absl.testing import parameterized
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
import tf_keras

from brokenelbo.models import flows

tfb = tfp.bijectors
tfd = tfp.distributions

EVENT_SIZE = 5
NUM_STEPS = 3
# A MADE with one hidden layer is two masked dense layers, each a kernel and a bias.
VARIABLES_PER_MADE = 4


def _flow(inverse, event_size=EVENT_SIZE, num_steps=NUM_STEPS):
  # Python's and NumPy's generators too: Keras draws its initializers' seeds from them, so
  # the MADEs' weights must not depend on the tests that ran before in the process.
  tf_keras.utils.set_random_seed(7)
  flow = flows.ShiftOnlyFlow(event_size=event_size, num_steps=num_steps,
                             hidden_units=(8,), inverse=inverse)
  flow.bijector.forward(tf.zeros([1, event_size]))  # Builds the MADEs.
  return flow


def _steps_in_application_order(flow):
  # `tfb.Chain` applies its list right to left.
  return list(reversed(flow.bijector.bijectors))


def _jacobian(fn, x):
  """The Jacobian `[B, n, n]` of a batch of event vectors `x` `[B, n]`."""
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = fn(x)
  return tape.batch_jacobian(y, x).numpy()


def _fresh(t):
  """A new tensor with the same value, so that no bijector cache entry applies to it."""
  return tf.constant(t.numpy())


class ShiftOnlyFlowTest(tf.test.TestCase, parameterized.TestCase):

  def _x(self, batch=3, event_size=EVENT_SIZE):
    return tf.constant(np.random.RandomState(0).randn(batch, event_size), tf.float32)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_forward_is_not_identity(self, inverse):
    # Otherwise every other test here would pass vacuously.
    flow = _flow(inverse)
    x = self._x()
    self.assertGreater(np.abs(flow.bijector.forward(x) - x).max(), 1e-2)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_inverse_of_forward_is_identity(self, inverse):
    flow = _flow(inverse)
    x = self._x()
    y = flow.bijector.forward(x)
    self.assertAllClose(x, flow.bijector.inverse(_fresh(y)), rtol=0., atol=1e-5)
    x2 = flow.bijector.inverse(_fresh(x))
    self.assertAllClose(x, flow.bijector.forward(_fresh(x2)), rtol=0., atol=1e-5)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_log_det_jacobians_are_zero(self, inverse):
    flow = _flow(inverse)
    x = self._x()
    y = flow.bijector.forward(x)
    fldj = flow.bijector.forward_log_det_jacobian(x, event_ndims=1)
    ildj = flow.bijector.inverse_log_det_jacobian(_fresh(y), event_ndims=1)
    self.assertAllClose(np.zeros(x.shape[:1]), fldj * np.ones(x.shape[:1]), rtol=0., atol=0.)
    self.assertAllClose(-fldj * np.ones(x.shape[:1]), ildj * np.ones(x.shape[:1]),
                        rtol=0., atol=0.)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_chain_layout_and_reversal_between_steps(self, inverse):
    flow = _flow(inverse)
    steps = _steps_in_application_order(flow)
    self.assertLen(steps, 2 * NUM_STEPS - 1)
    for i, step in enumerate(steps):
      if i % 2:
        self.assertIsInstance(step, tfb.Permute)
        self.assertAllEqual(step.permutation, [4, 3, 2, 1, 0])
      elif inverse:  # IAF: the inverse of a MAF step.
        self.assertNotIsInstance(step, tfb.MaskedAutoregressiveFlow)
        self.assertIsInstance(step.bijector, tfb.MaskedAutoregressiveFlow)
      else:
        self.assertIsInstance(step, tfb.MaskedAutoregressiveFlow)
    # Composing the steps one at a time gives the flow.
    x = self._x()
    y = x
    for step in steps:
      y = step.forward(y)
    self.assertAllClose(flow.bijector.forward(x), y, rtol=0., atol=1e-6)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_each_step_jacobian_is_unit_lower_triangular(self, inverse):
    flow = _flow(inverse)
    x = self._x()
    for step in _steps_in_application_order(flow)[::2]:
      jacobian = _jacobian(step.forward, x)
      for j in jacobian:
        self.assertAllEqual(np.triu(j, 1), np.zeros_like(j))  # Exactly autoregressive.
        self.assertAllClose(np.diag(j), np.ones(EVENT_SIZE), rtol=0., atol=1e-6)
        # mu_i depends on x_{<i}: the strictly lower part is not all zero.
        self.assertGreater(np.abs(np.tril(j, -1)).max(), 1e-3)
      x = step.forward(x)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_first_step_output_order(self, inverse):
    # Output 0 of the first step is x_0 (mu_0 is a constant), output i moves with x_{<i}.
    flow = _flow(inverse)
    first = _steps_in_application_order(flow)[0]
    x = self._x(batch=1)
    jacobian = _jacobian(first.forward, x)[0]
    self.assertAllEqual(jacobian[0], np.eye(EVENT_SIZE)[0])

  @parameterized.named_parameters(('maf_odd', False, 5), ('iaf_odd', True, 5),
                                  ('maf_even', False, 6), ('iaf_even', True, 6))
  def test_full_flow_jacobian_has_unit_determinant(self, inverse, event_size):
    flow = _flow(inverse, event_size=event_size)
    x = self._x(event_size=event_size)
    for j in _jacobian(flow.bijector.forward, x):
      # |det| = 1: the reversal's sign (-1 for 6 = 3 swaps) times unit triangular factors.
      self.assertAllClose(1., abs(np.linalg.det(j.astype(np.float64))), rtol=0., atol=1e-5)
      # The reversal makes the whole chain not triangular (else it could be one step).
      self.assertGreater(np.abs(np.triu(j, 1)).max(), 1e-3)
      self.assertGreater(np.abs(np.tril(j, -1)).max(), 1e-3)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_transformed_log_prob_is_base_log_prob_of_inverse(self, inverse):
    flow = _flow(inverse)
    loc = np.array([0.5, -1., 0., 2., 0.1], np.float32)
    scale = np.array([1., 0.5, 2., 0.3, 1.5], np.float32)
    base = tfd.MultivariateNormalDiag(loc=loc, scale_diag=scale)
    dist = tfd.TransformedDistribution(base, flow.bijector)
    y = flow.bijector.forward(self._x())
    y = _fresh(y)
    x = flow.bijector.inverse(_fresh(y)).numpy().astype(np.float64)
    # Change of variables with log|det| = 0, the Gaussian density written out.
    expected = (-0.5 * np.sum(((x - loc) / scale)**2, axis=-1) - np.sum(np.log(scale)) -
                0.5 * EVENT_SIZE * np.log(2. * np.pi))
    self.assertAllClose(expected, dist.log_prob(y), rtol=0., atol=1e-4)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_sample_is_forward_of_base_sample_and_its_log_prob(self, inverse):
    flow = _flow(inverse)
    base = tfd.MultivariateNormalDiag(loc=tf.zeros([EVENT_SIZE]))
    dist = tfd.TransformedDistribution(base, flow.bijector)
    seed = tf.constant([1, 2], tf.int32)
    y, log_prob = dist.experimental_sample_and_log_prob(4, seed=seed)
    x = base.sample(4, seed=seed)
    self.assertAllClose(flow.bijector.forward(x), y, rtol=0., atol=1e-6)
    # The log-prob returned with the sample (computed from the pre-flow x) agrees with
    # the log-prob of a fresh copy of y (computed through the inverse).
    self.assertAllClose(base.log_prob(x), log_prob, rtol=0., atol=1e-5)
    self.assertAllClose(log_prob, dist.log_prob(_fresh(y)), rtol=0., atol=1e-4)

  @parameterized.named_parameters(('maf', False), ('iaf', True))
  def test_trainable_variables_are_tracked(self, inverse):
    flow = _flow(inverse)
    variables = flow.trainable_variables
    self.assertLen(variables, NUM_STEPS * VARIABLES_PER_MADE)
    self.assertLen({id(v) for v in variables}, NUM_STEPS * VARIABLES_PER_MADE)
    for made in flow.mades:
      self.assertLen(made.trainable_variables, VARIABLES_PER_MADE)
    # Every variable reaches the output: a gradient flows to each of them.
    x = self._x()
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(flow.bijector.forward(x)**2)
    gradients = tape.gradient(loss, variables)
    for v, g in zip(variables, gradients):
      self.assertIsNotNone(g, v.name)


if __name__ == '__main__':
  tf.test.main()
