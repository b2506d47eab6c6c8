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

Each restart keeps its best repeat by L_K on the training batch. The epsilons and R may
differ per member of a batched model (`models.synthetic.SyntheticVAE`, "Members"): each
member then follows its own schedule and objective, and makes its own choices. More:
docs/methods.md.

#### References

[1] Yacoby, Pan, Doshi-Velez. AABI 2020 (arXiv:2003.07756), Section 2 and Appendix D.
[2] Henze, Zirkler. Communications in Statistics - Theory and Methods 19(10), 1990.
[3] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo import errors
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
    epsilon_hz: Python `float`, eps_HZ (a factor); or a `float32` array `[...]`, one
      per restart (member).
    epsilon_sigma: Python `float`, eps_Sigma (a divisor); or one per member.
    epsilon_mu: Python `float`, eps_mu (a divisor); or one per member.
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
  of `step1_penalty`, but that a restart whose penalty enters the loss with weight 0 (a
  member in step 2 while others are in step 1) gets 0, even where its own gradient is not
  finite.
  """
  values, gradient = _penalty_and_gradient(tf.stop_gradient(codes), epsilon_hz,
                                           epsilon_sigma, epsilon_mu, max_exponent)

  @tf.custom_gradient
  def terms(codes):
    del codes  # The values are computed above: tapes do not record in here.

    def grad(upstream, *unused):  # Only the penalty enters a loss; the rest are metrics.
      del unused
      return tf.math.multiply_no_nan(gradient, upstream[..., tf.newaxis, tf.newaxis])

    return tuple(values[k] for k in _TERMS), grad

  return dict(zip(_TERMS, terms(codes)))


_TERMS = ('penalty', 'hz', 'covariance_deviation', 'mean_norm')


class Schedule:
  """LiBI's phases over a run of `epochs` epochs (see the module docstring).

  Args:
    epochs: Python `float` > 1, the run's length in epochs.
    repeats: Python `int` >= 1, R; or a tuple of them, one per member: every quantity of
      the schedule is then `[M]`, each member's the one its own R gives.
    step1_fraction: Python `float` in (0, 1), the part of each repeat spent in step 1.

  `LiBI` declares these domains (`brokenelbo.domains`) and checks them before it builds a
  schedule.
  """

  def __init__(self, epochs, repeats, step1_fraction):
    if isinstance(repeats, (tuple, list)):  # Per member, the float64 arithmetic of one R.
      repeats = np.asarray(repeats, np.float64)
    self.repeats = repeats
    self.step1_fraction = step1_fraction
    self.repeat_epochs = (float(epochs) - 1.) / repeats

  def choices_due(self, epoch):
    """How many repeats have ended by `epoch`: `int64` in [0, repeats], scalar or `[M]`."""
    ended = tf.floor(tf.cast(epoch, tf.float64) / self.repeat_epochs)
    return tf.cast(tf.minimum(ended, np.float64(self.repeats)), tf.int64)

  def in_step1(self, epoch):
    """Whether `epoch` is in step 1 of a repeat (never after the last repeat): `bool`,
    scalar or `[M]`."""
    position = tf.math.floormod(tf.cast(epoch, tf.float64), self.repeat_epochs)
    return (position < self.step1_fraction * self.repeat_epochs) & (
        self.choices_due(epoch) < self.repeats)


def _choose(model, x, seed, due, repeats, num_samples):
  """Scores the model as it stands, keeps the best of each restart whose choice is due
  (`due` exceeds its `selections`), and freezes those after their last repeat; returns
  the scores `[R]`. `due` and `repeats` are scalars, or `[R]` per member."""
  chosen = due > model.selections
  score = tf.reduce_mean(model.log_likelihood_bound(x, seed, num_samples), axis=-1)
  model.keep_best(tf.stop_gradient(score), members=chosen)
  model.selections.assign(tf.where(chosen, due, model.selections))
  model.freeze_best(members=chosen & (due >= repeats))
  return score


def _member_count(settings):
  """M, the length of the tuples among `settings` (`{binding: value}`), or `None` if all are
  scalars; raises `UserError` for tuples of two lengths."""
  tuples = [(name, tuple(v)) for name, v in settings.items() if isinstance(v, (tuple, list))]
  for name, value in tuples[1:]:
    if len(value) != len(tuples[0][1]):
      raise errors.UserError(f'{name} = {value!r}: must have one value per member, as '
                             f'{tuples[0][0]} = {tuples[0][1]!r}')
  return len(tuples[0][1]) if tuples else None


def _per_member(value, dtype=np.float32):
  """A per-member setting (a tuple) as a NumPy array `[M]`; a scalar as it is, so that a
  run of one setting computes as it always has. (No TensorFlow op: a loss is built before
  `train` sets up its strategy.)"""
  return np.asarray(value, dtype) if isinstance(value, (tuple, list)) else value


_PER_MEMBER = domains.either(domains.POSITIVE, domains.tuple_of(domains.POSITIVE))


@gin.configurable
@domains.checked(epochs=domains.real(1, low_open=True),
                 repeats=domains.either(domains.POSITIVE_INT,
                                        domains.tuple_of(domains.POSITIVE_INT)),
                 step1_fraction=domains.FRACTION, epsilon_hz=_PER_MEMBER,
                 epsilon_sigma=_PER_MEMBER, epsilon_mu=_PER_MEMBER,
                 selection_samples=domains.POSITIVE_INT, max_exponent=domains.POSITIVE,
                 step2_scale=domains.one_of('keep', 'laplace'))
class LiBI:
  """LiBI's step 1 or step 2 objective by epoch, with the choice of the best repeat.

  A loss for `train.loss = @LiBI()`: the arguments are checked when `train` builds it,
  then `loss(model, x, seed, step, epoch)` runs inside the compiled step.

  **Members.** `repeats` and the three epsilons may each be a tuple of M values, one per
  member of the model (`SyntheticVAE`, "Members"), in member order: member m is then in
  step 1 or 2 by its own schedule, with its own penalty, chooses its best repeat when its
  own repeats end (`keep_best` and `freeze_best` of its own alone; per-member repeats need
  a model of members, whose `selections` are per member), and with `step2_scale='laplace'`
  has its scale set when it enters step 2. The loss stays the mean over members of each
  member's objective.

  Args:
    epochs: Python `float` > 1, the run's length (bind it to `train.epochs`).
    repeats: Python `int` >= 1, R (paper: 1 or 6); or one per member.
    step1_fraction: Python `float` in (0, 1), the part of each repeat spent in step 1 (not
      stated; 0.5).
    epsilon_hz, epsilon_sigma, epsilon_mu: Python `float`s > 0, eps_HZ, eps_Sigma, eps_mu of
      eq. 44 (paper: {0.001, 1, 10, 20}, {0.2, 0.5}, {0.2, 0.5}); or each one per member.
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
    UserError: for arguments out of range, or per-member tuples of two lengths.
  """

  def __init__(self, epochs=gin.REQUIRED, repeats=1, step1_fraction=0.5, epsilon_hz=1.,
               epsilon_sigma=0.5, epsilon_mu=0.5, selection_samples=64, max_exponent=20.,
               step2_scale='keep'):
    self.members = _member_count({
        'LiBI.repeats': repeats, 'LiBI.epsilon_hz': epsilon_hz,
        'LiBI.epsilon_sigma': epsilon_sigma, 'LiBI.epsilon_mu': epsilon_mu})
    self.schedule = Schedule(epochs, repeats, step1_fraction)
    self.step2_scale = step2_scale
    self.repeats = _per_member(repeats, np.int64)
    self.per_member_schedule = isinstance(repeats, (tuple, list))
    self.epsilon_hz, self.epsilon_sigma, self.epsilon_mu = (
        _per_member(epsilon_hz), _per_member(epsilon_sigma), _per_member(epsilon_mu))
    self.selection_samples = selection_samples
    self.max_exponent = max_exponent

  def _check_model(self, model):
    """Raises `UserError` unless the model has one member per value of a per-member
    setting, and, for per-member repeats, one count of choices per member."""
    if self.members is not None and self.members != model.restarts:
      raise errors.UserError(f'LiBI has {self.members} values per setting, one per member: '
                             f'the model has {model.restarts} (SyntheticVAE.restarts)')
    if self.per_member_schedule and model.selections.shape.rank == 0:
      raise errors.UserError('LiBI.repeats per member needs a model of members: bind '
                             'SyntheticVAE.restart_ids (or member_datasets)')

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing for AutoGraph to do.
  def __call__(self, model, x, seed, step, epoch):
    """The loss of one step.

    Args:
      model: a `models.synthetic.SyntheticVAE`.
      x: `float32` `Tensor` `[N, D]`: the whole training set (full batch; HZ needs it), or
        stacked `[N, K, D]` for members of several data sets.
      seed: stateless seed `[2]` of this step.
      step: scalar `Tensor`, the step (the schedule follows `epoch`; with
        `step2_scale='laplace'`, `step` tells the previous step's epoch).
      epoch: scalar `float32` `Tensor`, training progress in epochs.

    Returns:
      (loss, metrics): the mean over restarts of the phase's objective, and the means over
      restarts of: phase (1 or 2), nll_codes (-mean log p_theta(x|h(x))), the step-1
      terms hz, covariance_deviation, mean_norm and penalty (0 in step 2), the rate,
      distortion and elbo of q_phi, beta = 1 (the rate's weight in step 2's negative
      ELBO), and chosen (the number of choices of the best repeat so far); each a scalar,
      the mean over members of per-member settings.

    Raises:
      UserError: for per-member settings that do not fit the model (`_check_model`).
    """
    self._check_model(model)
    seed_loss, seed_choice = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    # The schedule's quantities are scalars, or `[M]` for per-member repeats.
    due = self.schedule.choices_due(epoch)
    tf.cond(tf.reduce_any(due > model.selections),
            lambda: _choose(model, x, seed_choice, due, self.repeats,
                            self.selection_samples),
            lambda: tf.zeros([model.restarts]))
    in_step1 = self.schedule.in_step1(epoch)
    if self.step2_scale == 'laplace':
      step = tf.cast(step, tf.float64)
      previous = tf.cast(epoch, tf.float64) * (step - 1.) / tf.maximum(step, 1.)
      entering = self.schedule.in_step1(previous) & tf.logical_not(in_step1)
      members = entering if entering.shape.rank else None
      tf.cond(tf.reduce_any(entering), lambda: model.set_laplace_scale(x, members),
              lambda: tf.zeros([model.restarts, 2]))
    # Both objectives are cheap but for the penalty, which only step 1 computes (for every
    # member while any is in step 1); tf.where passes each member's phase's gradient alone.
    codes = model.codes(x)
    nll = -tf.reduce_mean(model.likelihood(codes).log_prob(model.member_examples(x)),
                          axis=-1)
    terms = tf.cond(
        tf.reduce_any(in_step1),
        lambda: compiled_step1_penalty(codes, self.epsilon_hz, self.epsilon_sigma,
                                       self.epsilon_mu, self.max_exponent),
        lambda: {k: tf.zeros_like(nll) for k in _TERMS})
    terms = {k: tf.where(in_step1, v, 0.) for k, v in terms.items()}  # 0 in step 2.
    rate, distortion = model.rate_distortion(x, seed_loss, stop_theta=True)
    rate, distortion = tf.reduce_mean(rate, axis=-1), tf.reduce_mean(distortion, axis=-1)
    loss = tf.reduce_mean(tf.where(in_step1, nll + terms['penalty'], rate + distortion))
    metrics = {k: tf.reduce_mean(v) for k, v in terms.items()}
    metrics.update(phase=2. - tf.reduce_mean(tf.cast(in_step1, tf.float32)),
                   nll_codes=tf.reduce_mean(nll), rate=tf.reduce_mean(rate),
                   distortion=tf.reduce_mean(distortion),
                   elbo=-tf.reduce_mean(rate + distortion), beta=tf.constant(1.),
                   chosen=tf.reduce_mean(tf.cast(model.selections, tf.float32)))
    return loss, metrics

  def metrics_at(self, epoch):
    """beta = 1 at every epoch: step 2 minimises the negative ELBO (see `losses`)."""
    del epoch
    return dict(beta=1.)
