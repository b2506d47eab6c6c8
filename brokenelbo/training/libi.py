"""LiBI, Likelihood Before Inference (Yacoby, Pan & Doshi-Velez 2020), as a training loss.

With h(x) a deterministic code network, LiBI repeats R times (Section 2, Appendix D):

  Step 1 (eq. 44), over theta and h:
      (1/N) sum_n -log p_theta(x_n | h(x_n)) + eps_HZ exp(HZ({h(x_n)}))
      + exp(||Sigma_hat - I||_F^2 / eps_Sigma) + exp(||mu_hat||_2^2 / eps_mu),
  Step 2 (eqs. 45-46), over phi, theta fixed: the negative ELBO, mean of R(x) + D(x);
  Step 3: re-initialise h to the mean of q_phi(z|x) (free: h *is* that mean network),

and returns the best theta (with its phi) over the repeats. HZ: the Henze-Zirkler statistic
of the N codes (`statistics.henze_zirkler`); mu_hat, Sigma_hat: their mean and covariance
(divided by N). The compiled loss `LiBI(...)(model, x, seed, step, epoch)` picks the phase:

  repeat length  T = (epochs - 1) / R           (the last epoch is kept for the choice),
  step 1         while (epoch mod T) < step1_fraction * T; step 2 for the rest.

Each restart keeps its best repeat by L_K on the training batch. More: docs/methods.md.

#### References

[1] Yacoby, Pan, Doshi-Velez. AABI 2020 (arXiv:2003.07756), Section 2 and Appendix D.
[2] Henze, Zirkler. Communications in Statistics - Theory and Methods 19(10), 1990.
[3] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import gin
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.statistics import henze_zirkler


def capped_exp(u, max_exponent):
  """exp(u) for u <= max_exponent, its tangent exp(c) (1 + u - c) beyond (c = max_exponent)."""
  c = tf.constant(max_exponent, u.dtype)
  return tf.exp(tf.minimum(u, c)) * (1. + tf.nn.relu(u - c))


def step1_penalty(codes, epsilon_hz, epsilon_sigma, epsilon_mu, max_exponent=20.):
  """The constraint terms of LiBI's step 1 (Appendix D, eq. 44) for a set of codes.

  Args:
    codes: `float32` `Tensor` `[..., N, d]`, the codes h(x_n) (leading axes: restarts); d
      static.
    epsilon_hz: Python `float`, eps_HZ (a factor).
    epsilon_sigma: Python `float`, eps_Sigma (a divisor).
    epsilon_mu: Python `float`, eps_mu (a divisor).
    max_exponent: Python `float`, where each exp continues linearly (`capped_exp`).

  Returns:
    `dict` of `Tensor`s `[...]`: hz (HZ of the codes), covariance_deviation
    (||Sigma_hat - I||_F^2), mean_norm (||mu_hat||_2^2), and penalty, the sum
    eps_HZ exp(HZ) + exp(covariance_deviation / eps_Sigma) + exp(mean_norm / eps_mu).
  """
  n, d = tf.cast(tf.shape(codes)[-2], codes.dtype), codes.shape[-1]
  mean = tf.reduce_mean(codes, axis=-2)
  centred = codes - mean[..., tf.newaxis, :]
  covariance = tf.linalg.matmul(centred, centred, transpose_a=True) / n
  covariance_deviation = tf.reduce_sum(tf.square(covariance - tf.eye(d)), axis=[-2, -1])
  mean_norm = tf.reduce_sum(tf.square(mean), axis=-1)
  hz = henze_zirkler.henze_zirkler(codes)
  penalty = (epsilon_hz * capped_exp(hz, max_exponent)
             + capped_exp(covariance_deviation / epsilon_sigma, max_exponent)
             + capped_exp(mean_norm / epsilon_mu, max_exponent))
  return dict(hz=hz, covariance_deviation=covariance_deviation, mean_norm=mean_norm,
              penalty=penalty)


@tf.function(jit_compile=True, autograph=False)  # Traced as written.
def _penalty_and_gradient(codes, epsilon_hz, epsilon_sigma, epsilon_mu, max_exponent):
  """`step1_penalty` and the gradient of its sum over restarts with respect to the codes,
  together under XLA."""
  with tf.GradientTape() as tape:
    tape.watch(codes)
    terms = step1_penalty(codes, epsilon_hz, epsilon_sigma, epsilon_mu, max_exponent)
    total = tf.reduce_sum(terms['penalty'])
  return terms, tape.gradient(total, codes)


def compiled_step1_penalty(codes, epsilon_hz, epsilon_sigma, epsilon_mu, max_exponent=20.):
  """`step1_penalty`, its value and its gradient compiled together by XLA.

  XLA fuses HZ's N x N pairwise terms and their derivatives into a few loops, 2-3x faster
  on CPU than TensorFlow's kernel-by-kernel gradient (a nested `jit_compile` function
  would compile the forward pass only). The restarts are independent, so the gradient of
  the sum over them holds each restart's own gradient; the value and the gradient are those
  of `step1_penalty`.
  """
  values, gradient = _penalty_and_gradient(tf.stop_gradient(codes), epsilon_hz,
                                           epsilon_sigma, epsilon_mu, max_exponent)

  @tf.custom_gradient
  def terms(codes):
    del codes  # The values are computed above: tapes do not record in here.

    def grad(upstream, *unused):  # Only the penalty enters a loss; the rest are metrics.
      del unused
      return upstream[..., tf.newaxis, tf.newaxis] * gradient

    return tuple(values[k] for k in _TERMS), grad

  return dict(zip(_TERMS, terms(codes)))


_TERMS = ('penalty', 'hz', 'covariance_deviation', 'mean_norm')


class Schedule:
  """LiBI's phases over a run of `epochs` epochs (see the module docstring).

  Args:
    epochs: Python `float` > 1, the run's length in epochs.
    repeats: Python `int` >= 1, R.
    step1_fraction: Python `float` in (0, 1), the part of each repeat spent in step 1.

  `LiBI` declares these domains (`brokenelbo.domains`) and checks them before it builds a
  schedule.
  """

  def __init__(self, epochs, repeats, step1_fraction):
    self.repeats = repeats
    self.step1_fraction = step1_fraction
    self.repeat_epochs = (float(epochs) - 1.) / repeats

  def choices_due(self, epoch):
    """How many repeats have ended by `epoch`: an `int64` scalar in [0, repeats]."""
    ended = tf.floor(tf.cast(epoch, tf.float64) / self.repeat_epochs)
    return tf.cast(tf.minimum(ended, float(self.repeats)), tf.int64)

  def in_step1(self, epoch):
    """Whether `epoch` is in step 1 of a repeat (never after the last repeat)."""
    position = tf.math.floormod(tf.cast(epoch, tf.float64), self.repeat_epochs)
    return (position < self.step1_fraction * self.repeat_epochs) & (
        self.choices_due(epoch) < self.repeats)


def _choose(model, x, seed, due, repeats, num_samples):
  """Scores the model as it stands, keeps each restart's best, and freezes them after the
  last repeat; returns the scores `[R]`."""
  score = tf.reduce_mean(model.log_likelihood_bound(x, seed, num_samples), axis=-1)
  model.keep_best(tf.stop_gradient(score))
  model.selections.assign(due)

  def freeze():
    model.freeze_best()
    return tf.constant(True)

  tf.cond(due >= repeats, freeze, lambda: tf.constant(False))
  return score


@gin.configurable
@domains.checked(epochs=domains.real(1, low_open=True), repeats=domains.POSITIVE_INT,
                 step1_fraction=domains.FRACTION, epsilon_hz=domains.POSITIVE,
                 epsilon_sigma=domains.POSITIVE, epsilon_mu=domains.POSITIVE,
                 selection_samples=domains.POSITIVE_INT, max_exponent=domains.POSITIVE,
                 step2_scale=domains.one_of('keep', 'laplace'))
class LiBI:
  """LiBI's step 1 or step 2 objective by epoch, with the choice of the best repeat.

  A loss for `train.loss = @LiBI()`: the arguments are checked when `train` builds it,
  then `loss(model, x, seed, step, epoch)` runs inside the compiled step.

  Args:
    epochs: Python `float` > 1, the run's length (bind it to `train.epochs`).
    repeats: Python `int` >= 1, R (paper: 1 or 6).
    step1_fraction: Python `float` in (0, 1), the part of each repeat spent in step 1 (not
      stated; 0.5).
    epsilon_hz, epsilon_sigma, epsilon_mu: Python `float`s > 0, eps_HZ, eps_Sigma, eps_mu of
      eq. 44 (paper: {0.001, 1, 10, 20}, {0.2, 0.5}, {0.2, 0.5}).
    selection_samples: Python `int` >= 1, K of the importance-weighted bound that chooses
      the best repeat.
    max_exponent: Python `float`, see `capped_exp`.
    step2_scale: Python `str`, q's scale as step 2 begins (not stated in the paper):
      'keep' leaves q's log-scale read-out as it was (untrained by step 1, which trains
      the mean alone: about scale 1 in the first repeat); 'laplace' sets it, on the first
      step of each step 2, to the mean-field Laplace scale of p_theta(z|x) at the codes
      (`SyntheticVAE.set_laplace_scale` on the training batch), so that step 2 starts
      from q's scale for the theta that step 1 fitted rather than from scale 1, whose
      draws through CubicJTEx's cubic map (noise variance 0.004) have distortions near
      1e9 nats.

  Raises:
    UserError: for arguments out of range.
  """

  def __init__(self, epochs=gin.REQUIRED, repeats=1, step1_fraction=0.5, epsilon_hz=1.,
               epsilon_sigma=0.5, epsilon_mu=0.5, selection_samples=64, max_exponent=20.,
               step2_scale='keep'):
    self.schedule = Schedule(epochs, repeats, step1_fraction)
    self.step2_scale = step2_scale
    self.repeats = repeats
    self.epsilon_hz, self.epsilon_sigma, self.epsilon_mu = (
        epsilon_hz, epsilon_sigma, epsilon_mu)
    self.selection_samples = selection_samples
    self.max_exponent = max_exponent

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing for AutoGraph to do.
  def __call__(self, model, x, seed, step, epoch):
    """The loss of one step.

    Args:
      model: a `models.synthetic.SyntheticVAE`.
      x: `float32` `Tensor` `[N, D]`: the whole training set (full batch; HZ needs it).
      seed: stateless seed `[2]` of this step.
      step: scalar `Tensor`, the step (the schedule follows `epoch`; with
        `step2_scale='laplace'`, `step` tells the previous step's epoch).
      epoch: scalar `float32` `Tensor`, training progress in epochs.

    Returns:
      (loss, metrics): the mean over restarts of the phase's objective, and the means over
      restarts of: phase (1 or 2), nll_codes (-mean log p_theta(x|h(x))), the step-1
      terms hz, covariance_deviation, mean_norm and penalty (0 in step 2), the rate,
      distortion and elbo of q_phi, beta = 1 (the rate's weight in step 2's negative
      ELBO), and chosen (the number of choices of the best repeat so far).
    """
    seed_loss, seed_choice = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    due = self.schedule.choices_due(epoch)
    tf.cond(due > model.selections,
            lambda: _choose(model, x, seed_choice, due, self.repeats,
                            self.selection_samples),
            lambda: tf.zeros([model.restarts]))
    in_step1 = self.schedule.in_step1(epoch)
    if self.step2_scale == 'laplace':
      step = tf.cast(step, tf.float64)
      previous = tf.cast(epoch, tf.float64) * (step - 1.) / tf.maximum(step, 1.)
      tf.cond(self.schedule.in_step1(previous) & tf.logical_not(in_step1),
              lambda: model.set_laplace_scale(x), lambda: tf.zeros([model.restarts, 2]))
    # Both objectives are cheap but for the penalty, which only step 1 computes; tf.where
    # passes each phase's gradient alone.
    codes = model.codes(x)
    nll = -tf.reduce_mean(model.likelihood(codes).log_prob(x), axis=-1)
    terms = tf.cond(
        in_step1,
        lambda: compiled_step1_penalty(codes, self.epsilon_hz, self.epsilon_sigma,
                                       self.epsilon_mu, self.max_exponent),
        lambda: {k: tf.zeros_like(nll) for k in _TERMS})
    rate, distortion = model.rate_distortion(x, seed_loss, stop_theta=True)
    rate, distortion = tf.reduce_mean(rate, axis=-1), tf.reduce_mean(distortion, axis=-1)
    loss = tf.reduce_mean(tf.where(in_step1, nll + terms['penalty'], rate + distortion))
    metrics = {k: tf.reduce_mean(v) for k, v in terms.items()}
    metrics.update(phase=2. - tf.cast(in_step1, tf.float32), nll_codes=tf.reduce_mean(nll),
                   rate=tf.reduce_mean(rate), distortion=tf.reduce_mean(distortion),
                   elbo=-tf.reduce_mean(rate + distortion), beta=tf.constant(1.),
                   chosen=tf.cast(model.selections, tf.float32))
    return loss, metrics

  def metrics_at(self, epoch):
    """beta = 1 at every epoch: step 2 minimises the negative ELBO (see `losses`)."""
    del epoch
    return dict(beta=1.)
