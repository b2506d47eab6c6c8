"""Mean-only (shift-only) masked autoregressive flows built from TFP bijectors.

A shift-only autoregressive step maps

  y_i = x_i + mu_i(x_{<i})          (MAF; density evaluation is one parallel pass)
  y_i = x_i + mu_i(y_{<i})          (IAF = inverse of MAF; sampling is one parallel pass)

where `mu` is a MADE (`tfb.AutoregressiveNetwork`). The Jacobian is unit lower triangular,
so every step is volume preserving: log|det J| = 0. Steps alternate the variable ordering
(`tfb.Permute` reversal), as in the paper's Appendix F.

#### References

[1] Germain, Gregor, Murray, Larochelle. MADE: Masked Autoencoder for Distribution
    Estimation. ICML 2015.
[2] Kingma, Salimans, Jozefowicz, Chen, Sutskever, Welling. Improved Variational Inference
    with Inverse Autoregressive Flow. NeurIPS 2016.
[3] Papamakarios, Pavlakou, Murray. Masked Autoregressive Flow for Density Estimation.
    NeurIPS 2017.
"""

import gin
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import domains

tfb = tfp.bijectors


@gin.configurable
@domains.checked(num_steps=domains.POSITIVE_INT,
                 hidden_units=domains.tuple_of(domains.POSITIVE_INT),
                 activation=domains.NAME, inverse=domains.BOOL)
class ShiftOnlyFlow(tf.Module):
  """A chain of shift-only MADE steps, as an IAF (`inverse=True`) or a MAF.

  Args:
    event_size: Python `int`, dimension of the variable transformed.
    num_steps: Python `int`, number of autoregressive steps (paper: 4).
    hidden_units: Python `tuple` of `int`, MADE hidden layer widths (paper: 3 x 640).
    activation: MADE hidden activation (paper: ReLU).
    inverse: Python `bool`. `True` builds an inverse autoregressive flow (cheap `forward`,
      for sampling an encoder); `False` a masked autoregressive flow (cheap `inverse`, for
      evaluating a marginal density).

  #### Examples

  ```python
  flow = ShiftOnlyFlow(event_size=64, num_steps=4, inverse=True)
  q = tfd.TransformedDistribution(tfd.MultivariateNormalDiag(loc, scale), flow.bijector)
  ```
  """

  def __init__(self, event_size, num_steps=4, hidden_units=(640, 640, 640),
               activation='relu', inverse=False, name=None):
    super().__init__(name=name)
    self.inverse = inverse
    self.mades = [
        # float32 under any mixed-precision policy: TFP's MADE does not support them.
        tfb.AutoregressiveNetwork(params=1, event_shape=[event_size],
                                  hidden_units=list(hidden_units), activation=activation,
                                  dtype=tf.float32)
        for _ in range(num_steps)
    ]
    reverse = tfb.Permute(list(reversed(range(event_size))))
    steps = []
    for i, made in enumerate(self.mades):
      if i:
        steps.append(reverse)
      step = tfb.MaskedAutoregressiveFlow(_shift_only(made), is_constant_jacobian=True)
      steps.append(tfb.Invert(step) if inverse else step)
    # `tfb.Chain` applies its list right to left; keep the steps in application order.
    self.bijector = tfb.Chain(list(reversed(steps)))


def _shift_only(made):
  return lambda x: (made(x)[..., 0], None)
