"""Restart-batched VAEs of the ground truth's architecture, for the synthetic data sets.

Yacoby, Pan & Doshi-Velez [1] (Appendix E) fit, on each of the four synthetic data sets
(`data.synthetic`), a generative model of the ground truth's own architecture, with the
noise variance (and B) fixed to their true values, and a mean-field Gaussian q:

  z ~ N(0, I_2),  x | z ~ N(f_theta(z), diag(noise_variance)),  q_phi(z|x) = N(loc_phi(x),
  diag(scale_phi(x)^2)), with f_theta and the trunk of q per data set ("Architecture"):

  'linear_jtex'  L z, L = cholesky(A A^T + B), theta = A [2, 2]   q linear in x
  'cubic_jtex'   (L z)^3 element-wise, the same L                 x -> 4 units (2 sigmoid,
                                                                  2 cube-root) -> 20 ReLU
  'gaussian'     z^T A, theta = A [2, 4]                          q linear in x
  'mobius'       MLP 2-50-50-2, tanh hidden, linear out           x -> 50 ReLU

The noise is N(0, sigma2 I - B) for the JTEx models (sigma2 = 0.01, B = diag(0.006, 0.006)),
N(0, 1e-6 I) for 'gaussian', N(0, 1e-5 I) for 'mobius', whose network has the architecture
of the stored f of `data.synthetic` (the paper leaves it unstated). q's mean and log
standard deviation are linear read-outs of one shared trunk: the log-scale read-out ("the
variance parameters") is the only part of q that its mean does not use, which LiBI's step 1
relies on (`training.libi`). `SyntheticVAE` says how restarts are batched and initialised,
and how one batch holds members of several settings and data sets.

[1]: Yaniv Yacoby, Weiwei Pan and Finale Doshi-Velez. Characterizing and Avoiding
     Problematic Global Optima of Variational Autoencoders. In _AABI_, 2020.
     https://arxiv.org/abs/2003.07756
"""

import collections

import gin
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.utils import cli

tfd = tfp.distributions

LATENT_DIM = data.LATENT_DIM

# Appendix E, "Architecture": the hidden layers of q_phi (and of h in LiBI) per data set,
# as (width, activation) pairs; the linear data sets have none.
INFERENCE_HIDDEN = {
    'linear_jtex': (),
    'gaussian': (),
    'cubic_jtex': ((4, 'sigmoid_cube_root'), (20, 'relu')),
    'mobius': ((50, 'relu'),),
}

# Appendix E, "Evaluation": S = 5000 draws from q_phi with its variance inflated 2x.
TEST_NUM_SAMPLES = 5000
TEST_VARIANCE_INFLATION = 2.

# Keeps the cube root's derivative finite at 0: sign(u) ((|u| + c)^(1/3) - c^(1/3)) has
# slope at most c^(-2/3) / 3 = 3.3e3 and differs from the cube root by less than c^(1/3).
_CUBE_ROOT_OFFSET = 1e-6

Parts = collections.namedtuple('Parts', ['encoder', 'decoder', 'marginal', 'proposal'])


def _cube_root(u):
  offset = tf.constant(_CUBE_ROOT_OFFSET, u.dtype)
  return tf.sign(u) * (tf.pow(tf.abs(u) + offset, 1. / 3.) - tf.pow(offset, 1. / 3.))


def _activation(name, h):
  if name == 'relu':
    return tf.nn.relu(h)
  if name == 'sigmoid_cube_root':  # CubicJTEx: half the units sigmoid, half cube root.
    half = h.shape[-1] // 2
    return tf.concat([tf.sigmoid(h[..., :half]), _cube_root(h[..., half:])], axis=-1)
  raise ValueError(f'unknown activation {name!r}')


def _dense(h, kernel, bias):
  """Restart-batched affine map: h `[R, B, m]`, kernel `[R, m, n]`, bias `[R, n]`."""
  return tf.linalg.matmul(h, kernel) + bias[:, tf.newaxis, :]


def _jtex_scale_tril(a, b):
  """L = cholesky(A A^T + B) for A `[R, 2, 2]` and the fixed B `[2, 2]`."""
  return tf.linalg.cholesky(tf.linalg.matmul(a, a, transpose_b=True) + b)


def _generative_shapes(name):
  """{parameter: shape} of theta (without the restart axis), in initialisation order."""
  if name in ('linear_jtex', 'cubic_jtex'):
    return {'a': (LATENT_DIM, 2)}
  if name == 'gaussian':
    return {'a': (LATENT_DIM, 4)}
  widths = (LATENT_DIM,) + data.MOBIUS_HIDDEN + (2,)
  shapes = {}
  for k, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
    shapes[f'kernel{k}'], shapes[f'bias{k}'] = (fan_in, fan_out), (fan_out,)
  return shapes


def _inference_shapes(name, data_dim):
  """{parameter: shape} of phi (without the restart axis): trunk, then the two read-outs."""
  shapes, fan_in = {}, data_dim
  for k, (width, _) in enumerate(INFERENCE_HIDDEN[name]):
    shapes[f'hidden{k}_kernel'], shapes[f'hidden{k}_bias'] = (fan_in, width), (width,)
    fan_in = width
  shapes['loc_kernel'], shapes['loc_bias'] = (fan_in, LATENT_DIM), (LATENT_DIM,)
  shapes['log_scale_kernel'] = (fan_in, LATENT_DIM)
  shapes['log_scale_bias'] = (LATENT_DIM,)
  return shapes


# The parameters of q_phi that its mean does not use.
VARIANCE_PARAMETERS = ('log_scale_kernel', 'log_scale_bias')


# The read-outs of q_phi start at this fraction of their Glorot scale, so that the initial
# codes (q's means) are near 0: LiBI's step-1 penalties then start bounded
# (||Sigma_hat - I||_F^2 <= 2 for codes at 0), instead of at exp(||Sigma_hat - I||^2 /
# eps_Sigma) of codes whose covariance is far from I, whose gradients would inflate Adam's
# second moments for thousands of steps. Every method starts from the same parameters.
READOUT_INIT_SCALE = 0.01


def _initial_value(name, shape, rng):
  """Glorot-uniform kernels (q's read-outs scaled by `READOUT_INIT_SCALE`) and zero biases;
  A of the linear and JTEx models ~ N(0, 1)."""
  if name == 'a':
    return rng.standard_normal(shape)
  if len(shape) == 1:
    return np.zeros(shape)
  limit = np.sqrt(6. / (shape[0] + shape[1]))
  if name in ('loc_kernel', 'log_scale_kernel'):
    limit *= READOUT_INIT_SCALE
  return rng.uniform(-limit, limit, shape)


def ground_truth_theta(name):
  """The true generative parameters of data set `name`, `{parameter: np.ndarray}`.

  A for 'linear_jtex' and 'cubic_jtex' (`[2, 2]`) and for 'gaussian' (`[2, 4]`), the stored
  network f for 'mobius' (`kernel0`, `bias0`, ...); no restart axis (`SyntheticVAE.assign`
  broadcasts them).
  """
  truth = data.ground_truth(name)
  if name == 'mobius':
    weights = truth.weights
    return {f'{kind}{k // 2}': np.asarray(w) for k, (w, kind) in
            enumerate(zip(weights, ('kernel', 'bias') * (len(weights) // 2)))}
  return {'a': np.asarray(truth.a)}


def mean_field_posterior_phi(name):
  """The q_phi of the best mean-field Gaussian to the true posterior of a linear data set.

  For x = z W + eps with W the loading `[2, D]` and eps ~ N(0, Psi), Psi diagonal, the
  posterior is N(M x, S) with S = (I + W Psi^-1 W^T)^-1 and M = S W Psi^-1; the mean-field
  Gaussian closest to it in KL(q || p) keeps the mean and has variances 1 / (S^-1)_ii
  (Appendix C.3). Both are linear in x, so the linear q_phi of 'linear_jtex' and
  'gaussian' represents it exactly.

  Returns:
    `{parameter: np.ndarray}` of phi (no restart axis), float64.
  """
  truth = data.ground_truth(name)
  if not hasattr(truth, 'loading'):
    raise ValueError(f'the posterior of {name!r} has no closed form')
  loading = truth.loading
  precision = np.eye(LATENT_DIM) + loading @ np.diag(1. / truth.noise_variance) @ loading.T
  covariance = np.linalg.inv(precision)
  gain = covariance @ loading @ np.diag(1. / truth.noise_variance)   # M, [2, D]
  return {'loc_kernel': gain.T, 'loc_bias': np.zeros(LATENT_DIM),
          'log_scale_kernel': np.zeros((truth.data_dim, LATENT_DIM)),
          'log_scale_bias': -0.5 * np.log(np.diag(precision))}


def _member_mask(mask, rank):
  """A `bool` `[M]` mask reshaped to `[M, 1, ...]`, to select whole members of a `[M, ...]`
  Tensor of rank `rank`; a scalar mask as it is."""
  if mask.shape.rank == 0:
    return mask
  return tf.reshape(mask, [-1] + [1] * (rank - 1))


def _stop_gradient_if(params, stop):
  """`params` with their gradients stopped when `stop`: Python `bool`, scalar `bool`
  Tensor, or `bool` Tensor `[M]`, one per member."""
  if stop is None or stop is False:
    return params
  if stop is True:
    return {k: tf.stop_gradient(v) for k, v in params.items()}
  stop = tf.convert_to_tensor(stop)
  return {k: tf.where(_member_mask(stop, v.shape.rank), tf.stop_gradient(v), v)
          for k, v in params.items()}


def run_seed():
  """The seed of a `SyntheticVAE` built without one: that of the run, from `train.seed`.

  It is the first draw of `np.random.RandomState(train.seed).randint(2**31 - 1)`, with
  `train.seed` as bound in gin (`train`'s default, 0, when it is not bound or `train` is not
  registered). `train` seeds NumPy's global generator with `train.seed` just before it
  builds the model, and the model used to draw its seed from that generator: this is the
  same seed (the committed runs' initial parameters), drawn from a generator of its own.

  Returns:
    Python `int` in [0, 2**31 - 1).
  """
  try:
    train_seed = gin.get_bindings('train').get('seed', 0)
  except ValueError:  # No `train` in gin's registry: not in a training run.
    train_seed = 0
  return int(np.random.RandomState(train_seed).randint(2**31 - 1))


# How q's scale starts (`SyntheticVAE.initial_scale`, `training.libi.LiBI.step2_scale`).
INITIAL_SCALES = ('unit', 'laplace')


def _check_members(restarts, first_restart, restart_ids, member_datasets, stacked):
  """Raises `UserError` unless the members' bindings agree with each other and with the
  data: `stacked` is the number K of stacked data sets of the run (`synthetic.index` a
  tuple of K), 0 for one data set `[N, D]`, `None` when unknown."""
  for binding, values in (('restart_ids', restart_ids), ('member_datasets', member_datasets)):
    if values is not None and len(values) != restarts:
      raise errors.UserError(f'SyntheticVAE.{binding} = {tuple(values)!r}: must have one value '
                             f'per member, SyntheticVAE.restarts = {restarts}')
  if restart_ids is not None and first_restart:
    raise errors.UserError(f'SyntheticVAE.first_restart = {first_restart}: must be 0 when '
                           'SyntheticVAE.restart_ids gives every seeding index')
  if stacked is None:
    return
  if stacked and member_datasets is None:
    raise errors.UserError(f'synthetic.index stacks {stacked} data sets: bind '
                           'SyntheticVAE.member_datasets, the data set of each member')
  if not stacked and member_datasets is not None:
    raise errors.UserError('SyntheticVAE.member_datasets needs stacked data: bind '
                           'synthetic.index to a tuple of data sets')
  if member_datasets is not None and max(member_datasets) >= stacked:
    raise errors.UserError(f'SyntheticVAE.member_datasets = {tuple(member_datasets)!r}: must '
                           f'each be in [0, {stacked}), the data sets of synthetic.index')


@gin.configurable
@domains.checked(dataset=domains.optional(domains.one_of(*data.NAMES)),
                 restarts=domains.POSITIVE_INT, seed=domains.optional(domains.SEED),
                 first_restart=domains.NON_NEGATIVE_INT,
                 restart_ids=domains.optional(domains.tuple_of(domains.NON_NEGATIVE_INT)),
                 member_datasets=domains.optional(domains.tuple_of(domains.NON_NEGATIVE_INT)),
                 initial_scale=domains.one_of(*INITIAL_SCALES))
class SyntheticVAE(tf.Module):
  """`restarts` independent VAEs of the ground truth's architecture for one data set type.

  See the module docstring for the model. Every call takes examples `x` `[B, D]` (shared
  by all restarts), or, for members of several data sets, stacked examples `[B, K, D]`,
  and returns quantities with a leading restart (member) axis.

  **Restarts.** Every variable has a leading axis of `restarts` independent models, trained
  as one batched computation: no operation mixes restarts, restart r's initial parameters
  depend only on (seed, first_restart + r), and its z draws only on (step seed,
  first_restart + r), so a restart trains the same whatever the others. The losses of
  `training.losses`, `training.lagging` and `training.libi` average over restarts, so with
  plain (element-wise) Adam each restart follows Adam on its own loss with epsilon
  multiplied by the number of restarts (Adam of g / R with epsilon e is Adam of g with
  epsilon R e). The trainer's evaluation (`statistics.elbo`) of `rate_distortion` reports
  the mean over restarts and each restart's own value.

  **Members.** The same axis can hold M = `restarts` models of different settings and data
  sets of one type, "members", each with its own seeding index `restart_ids[m]` (its
  initial parameters from (seed, restart_ids[m]), its z draws from (step seed,
  restart_ids[m])), its own data set `member_datasets[m]`, a slice of stacked data
  `[B, K, D]` (`data.synthetic` with a tuple of K indices), and its own hyperparameters,
  one value per member in the losses' bindings (`beta_schedule.beta`,
  `LaggingInference.segments`, `LiBI`'s epsilons and repeats). A member with id r then
  trains as restart r of its setting's run alone, on its data set, whatever the other
  members, given Adam's epsilon: its run alone of R restarts had epsilon R e on its own
  loss, and the batch gives it M e', so the batch binds `normalized_adam.epsilon` e' =
  R / M * e (docs/methods.md, "Members"). Each method that takes `x` gathers each
  member's examples from stacked data (`member_examples`); the evaluation reports each
  member's values as each restart's. A model built with `restart_ids` or
  `member_datasets` keeps one count of choices of the best model per member
  (`selections` `[M]`, so that LiBI's repeats may differ per member); without, one count
  for all, as the checkpoints of runs of one setting hold it.

  **Initialisation** (not stated in the paper): A ~ N(0, 1) entry-wise; Glorot-uniform
  kernels and zero biases elsewhere, the two read-outs of q at 1/100 of that scale
  (`READOUT_INIT_SCALE`), so that q starts at N(~0, I) and LiBI's codes near 0. CubicJTEx's
  cube-root units are smoothed at 0 to keep their derivative finite (`_CUBE_ROOT_OFFSET`).

  **q's initial scale** (not stated in the paper either): `initial_scale='unit'` leaves q's
  log-scale read-out at about 0, so q starts at scale 1 whatever the data's noise;
  `'laplace'` sets it to the posterior's mean-field Laplace scale at q's initial means on
  the run's training split (`set_laplace_scale`). On 'gaussian' (noise variance 1e-6) a
  scale of 1 makes the first distortion about 5e6 nats, whose gradient shrinks A long
  before q's scale comes down (`scripts/libi_gaussian_init.py`).

  **Keeping the best.** Non-trainable copies of every parameter, with a score per restart
  (`keep_best`, `freeze_best`), let a training method keep the best model it has met
  (LiBI keeps the best of its repeats); once frozen, every computation of a restart uses
  its best copy. **Test log-likelihood:** `parts(r)` gives restart r's encoder, decoder,
  marginal and the proposal with 2x the variance of q, the arguments of
  `statistics.information.importance_weighted_bound`, which
  `evaluation.synthetic_run.estimate_log_likelihood` runs for every restart with S = 5000
  draws (Appendix E, "Evaluation", eq. 48).

  #### Examples

  ```python
  from brokenelbo.data import synthetic as data
  from brokenelbo.models import synthetic

  model = synthetic.SyntheticVAE(dataset='linear_jtex', restarts=3, seed=0)
  x = data.synthetic('train', name='linear_jtex')
  rate, distortion = model.rate_distortion(x, seed=[0, 0])        # [3, 500] each
  model.assign(theta=synthetic.ground_truth_theta('linear_jtex'))

  # Members: 2 settings x 2 data sets x 2 restarts, member m of data set m // 2 % 2.
  members = synthetic.SyntheticVAE(dataset='linear_jtex', restarts=8, seed=0,
                                   restart_ids=(0, 1) * 4,
                                   member_datasets=(0, 0, 1, 1) * 2)
  x = data.synthetic('train', name='linear_jtex', index=(0, 1))   # [500, 2, 2]
  rate, distortion = members.rate_distortion(x, seed=[0, 0])      # [8, 500] each
  ```

  Args:
    dataset: Python `str`, one of `data.synthetic.NAMES`; `None` (the default): the data
      set of the run, `synthetic.name` as bound in gin.
    restarts: Python `int` >= 1, the number of independent models trained together.
    seed: Python `int`, restart r's initial parameters are drawn from
      `np.random.default_rng([seed, restart_ids[r]])`; `None` (the default): the seed of
      the run, `run_seed()`, derived from `train.seed` as bound in gin (never NumPy's
      global generator).
    first_restart: Python `int`, the index of the first restart, so that restarts can be
      split across runs (restarts 10-19 are `first_restart = 10, restarts = 10`).
    restart_ids: Python `tuple` of `restarts` `int`s >= 0, the seeding index of each
      member (see above); `None` (the default): `first_restart`, ..., `first_restart +
      restarts - 1`.
    member_datasets: Python `tuple` of `restarts` `int`s, the slice k in [0, K) of stacked
      data `[B, K, D]` that each member sees; `None` (the default): every member sees the
      same `[B, D]`. Required exactly when `synthetic.index` is a tuple, with `dataset`
      unset.
    initial_scale: Python `str`, one of `INITIAL_SCALES` (see above); 'laplace' reads the
      training split of the run's data set (`synthetic.name`, `synthetic.index` as bound
      in gin) unless `dataset` is given, then index 0, or, with `member_datasets`, the
      data sets 0, ..., K - 1 stacked, K = max(member_datasets) + 1.
    name: Python `str`, the module's name.

  Raises:
    UserError: for an unknown data set, `restarts` < 1, `restart_ids` or
      `member_datasets` of another length than `restarts`, `restart_ids` with a
      `first_restart`, or `member_datasets` that do not match `synthetic.index`.
  """

  def __init__(self, dataset=None, restarts=10, seed=None, first_restart=0, restart_ids=None,
               member_datasets=None, initial_scale='unit', name=None):
    super().__init__(name=name)
    if dataset is None:
      data_set = {k: cli.configured_arguments(data.synthetic)[k] for k in ('name', 'index')}
      dataset = data_set['name']
      index = data_set['index']
      stacked = len(index) if isinstance(index, (tuple, list)) else 0
    elif member_datasets is None:
      data_set, stacked = dict(name=dataset, index=0), None
    else:
      data_set = dict(name=dataset, index=tuple(range(max(member_datasets) + 1)))
      stacked = None
    _check_members(restarts, first_restart, restart_ids, member_datasets, stacked)
    if seed is None:
      seed = run_seed()
    self.dataset = dataset
    self.restarts = restarts
    self.first_restart = first_restart
    self.restart_ids = tuple(int(r) for r in (
        range(first_restart, first_restart + restarts) if restart_ids is None
        else restart_ids))
    self.member_datasets = (None if member_datasets is None
                            else tuple(int(k) for k in member_datasets))
    self.seed = seed
    truth = data.ground_truth(dataset)
    self.data_dim = truth.data_dim
    self._noise_scale = tf.constant(np.sqrt(truth.noise_variance), tf.float32)
    if dataset in ('linear_jtex', 'cubic_jtex'):
      self._b = tf.constant(truth.b, tf.float32)
    theta_shapes = _generative_shapes(dataset)
    phi_shapes = _inference_shapes(dataset, self.data_dim)
    values = {k: [] for k in (*theta_shapes, *phi_shapes)}
    for restart_id in self.restart_ids:
      rng = np.random.default_rng([seed, restart_id])
      for k, shape in (*theta_shapes.items(), *phi_shapes.items()):
        values[k].append(_initial_value(k, shape, rng))

    def variables(shapes, trainable, prefix=''):
      return {k: tf.Variable(np.stack(values[k]).astype(np.float32), trainable=trainable,
                             name=prefix + k) for k in shapes}

    self.theta = variables(theta_shapes, True)
    self.phi = variables(phi_shapes, True)
    self.best_theta = variables(theta_shapes, False, 'best_')
    self.best_phi = variables(phi_shapes, False, 'best_')
    self.best_score = tf.Variable(tf.fill([restarts], -np.inf), trainable=False,
                                  name='best_score')
    self.use_best = tf.Variable(tf.zeros([restarts], tf.bool), trainable=False,
                                name='use_best')
    # How many choices of the best model a training method has made (LiBI's repeats): one
    # count per member for a model of members, else one for all (the checkpoints of runs
    # of one setting hold a scalar).
    members = restart_ids is not None or member_datasets is not None
    self.selections = tf.Variable(tf.zeros([restarts] if members else [], tf.int64),
                                  trainable=False, name='selections')
    if initial_scale == 'laplace':
      self.set_laplace_scale(data.synthetic('train', **data_set))

  # ------------------------------------------------------------------------------------
  # Parameters.

  def _effective(self, live, best):
    """Each restart's live parameters, or its best copy once `use_best` is set.

    Selected by multiplying with a 0/1 mask (exact for finite parameters) rather than
    `tf.where`, whose boolean intermediates upset TensorFlow's type inference when a loss
    differentiates through a `tf.cond` (a spurious warning).
    """
    out = {}
    for k, variable in live.items():
      keep = tf.reshape(tf.cast(tf.logical_not(self.use_best), variable.dtype),
                        [-1] + [1] * (variable.shape.rank - 1))
      out[k] = variable * keep + best[k] * (1. - keep)
    return out

  def theta_params(self, stop_gradient=None):
    """theta as `{name: Tensor [R, ...]}`; `stop_gradient` (Python or `bool` Tensor, scalar
    or `[R]`, per member)."""
    return _stop_gradient_if(self._effective(self.theta, self.best_theta), stop_gradient)

  def phi_params(self, stop_gradient=None):
    """phi as `{name: Tensor [R, ...]}`; `stop_gradient` (Python or `bool` Tensor, scalar
    or `[R]`, per member)."""
    return _stop_gradient_if(self._effective(self.phi, self.best_phi), stop_gradient)

  def assign(self, theta=None, phi=None, restarts=None):
    """Sets parameters, e.g. to `ground_truth_theta` or `mean_field_posterior_phi`.

    Args:
      theta, phi: `{name: array}` of some parameters, each without the restart axis (the
        same value for every restart in `restarts`) or with it.
      restarts: indices of the restarts to set; default all.
    """
    for group, values in ((self.theta, theta), (self.phi, phi)):
      for k, value in (values or {}).items():
        variable = group[k]
        value = np.asarray(value, np.float32)
        new = variable.numpy()
        index = slice(None) if restarts is None else np.asarray(restarts)
        new[index] = value
        variable.assign(new)

  # ------------------------------------------------------------------------------------
  # Each member's examples.

  def member_examples(self, x):
    """The examples each member sees: x `[B, D]` as it is (shared by every member), or,
    from stacked x `[B, K, D]`, member m's data set `member_datasets[m]`, `[R, B, D]`.

    Raises:
      UserError: for stacked x and a model without `member_datasets`, or the reverse, or
        `member_datasets` beyond the K data sets of x.
    """
    rank = len(x.shape)
    if rank == 2 and self.member_datasets is None:
      return x
    if rank == 2:
      raise errors.UserError(
          f'SyntheticVAE.member_datasets = {self.member_datasets!r} needs stacked data '
          f'[B, K, D]; got {list(x.shape)} (bind synthetic.index to a tuple)')
    if self.member_datasets is None:
      raise errors.UserError(
          f'stacked data {list(x.shape)} needs SyntheticVAE.member_datasets, the data set '
          'of each member')
    num_datasets = x.shape[1]
    if num_datasets is not None and max(self.member_datasets) >= num_datasets:
      raise errors.UserError(
          f'SyntheticVAE.member_datasets = {self.member_datasets!r}: must each be in '
          f'[0, {num_datasets}), the data sets of the stacked data')
    x = tf.convert_to_tensor(x, tf.float32)
    return tf.transpose(tf.gather(x, self.member_datasets, axis=1), [1, 0, 2])

  # ------------------------------------------------------------------------------------
  # Distributions, batched over restarts.

  @property
  def prior(self):
    """p(z) = N(0, I_2), `tfd.Independent(tfd.Normal)` with event shape `[2]`."""
    return tfd.Independent(tfd.Normal(tf.zeros([LATENT_DIM]), 1.), 1)

  def mean(self, z, theta):
    """f_theta(z) `[R, B, D]` for z `[R, B, 2]` and theta `{name: [R, ...]}`."""
    if self.dataset == 'gaussian':
      return tf.linalg.matmul(z, theta['a'])
    if self.dataset in ('linear_jtex', 'cubic_jtex'):
      projected = tf.linalg.matmul(z, _jtex_scale_tril(theta['a'], self._b),
                                   transpose_b=True)     # (L z)^T = z^T L^T.
      return projected if self.dataset == 'linear_jtex' else projected**3
    h, num_layers = z, len(theta) // 2
    for k in range(num_layers):
      h = _dense(h, theta[f'kernel{k}'], theta[f'bias{k}'])
      if k < num_layers - 1:
        h = tf.tanh(h)
    return h

  def likelihood(self, z, stop_gradient=None, theta=None):
    """p_theta(x|z), batch `[R, B]`, event `[D]`, for z `[R, B, 2]`."""
    theta = self.theta_params(stop_gradient) if theta is None else theta
    return tfd.Independent(tfd.Normal(self.mean(z, theta), self._noise_scale), 1)

  def _inference_outputs(self, x, phi):
    """loc and log-scale of q_phi(z|x), each `[R, B, 2]`, for x `[B, D]` or `[R, B, D]`."""
    h = tf.convert_to_tensor(x, tf.float32)
    if h.shape.rank == 2:
      h = tf.broadcast_to(h, [phi['loc_bias'].shape[0], *tf.unstack(tf.shape(h))])
    for k, (_, activation) in enumerate(INFERENCE_HIDDEN[self.dataset]):
      h = _activation(activation, _dense(h, phi[f'hidden{k}_kernel'], phi[f'hidden{k}_bias']))
    return (_dense(h, phi['loc_kernel'], phi['loc_bias']),
            _dense(h, phi['log_scale_kernel'], phi['log_scale_bias']))

  def codes(self, x, stop_gradient=None):
    """The mean of q_phi(z|x), `[R, B, 2]`, for x `[B, D]` or stacked `[B, K, D]`: LiBI's
    code network h. Its gradient reaches no variance parameter (`VARIANCE_PARAMETERS`)."""
    return self._inference_outputs(self.member_examples(x), self.phi_params(stop_gradient))[0]

  def posterior(self, x, stop_gradient=None, scale_factor=1.):
    """q_phi(z|x), batch `[R, B]`, event `[2]`, for x `[B, D]` or stacked `[B, K, D]`;
    `scale_factor` multiplies its scale."""
    return self._posterior(self.member_examples(x), self.phi_params(stop_gradient),
                           scale_factor)

  def _posterior(self, examples, phi, scale_factor=1.):
    """q_phi(z|x) for `member_examples`' x, `[B, D]` or `[R, B, D]`."""
    loc, log_scale = self._inference_outputs(examples, phi)
    return tfd.Independent(tfd.Normal(loc, tf.exp(log_scale) * scale_factor), 1)

  def laplace_log_scale(self, x):
    """The log of the mean-field Laplace scale of p_theta(z|x) at q's means h(x), `[R, B, 2]`.

    With J = d f_theta / dz at z = h(x) and the noise variances Psi, the Gauss-Newton
    posterior precision is Lambda = I + J^T Psi^-1 J, and the mean-field Gaussian closest to
    N(h(x), Lambda^-1) in KL(q || p) has variances 1 / Lambda_kk (Appendix C.3; exact for
    the linear data sets, where J = A^T or L). Returns -log(Lambda_kk) / 2. x `[B, D]` or
    stacked `[B, K, D]`.
    """
    codes = tf.stop_gradient(self.codes(x))
    theta = self.theta_params(stop_gradient=True)
    precision = []
    for k in range(LATENT_DIM):  # Forward mode: one pass per latent coordinate.
      with tf.autodiff.ForwardAccumulator(codes, tf.one_hot(
          tf.fill(tf.shape(codes)[:-1], k), LATENT_DIM)) as accumulator:
        mean = self.mean(codes, theta)
      column = accumulator.jvp(mean)                                 # d f / d z_k, [R, B, D]
      precision.append(1. + tf.reduce_sum(tf.square(column / self._noise_scale), axis=-1))
    return -0.5 * tf.math.log(tf.stack(precision, axis=-1))

  def set_laplace_scale(self, x, members=None):
    """Sets q's log-scale read-out so that q's scale is, for every x, the geometric mean
    over `x` (`[B, D]` or stacked `[B, K, D]`) of `laplace_log_scale`'s scales: its kernel
    to 0 and its bias to the mean log-scale, per restart and coordinate; with `members`
    (`bool` `[R]`), of those members alone. Returns the bias, `[R, 2]`."""
    bias = tf.reduce_mean(self.laplace_log_scale(x), axis=-2)
    kernel, old_bias = self.phi['log_scale_kernel'], self.phi['log_scale_bias']
    if members is None:
      kernel.assign(tf.zeros_like(kernel))
      old_bias.assign(bias)
      return bias
    kernel.assign(tf.where(_member_mask(members, kernel.shape.rank), tf.zeros_like(kernel),
                           kernel))
    old_bias.assign(tf.where(_member_mask(members, old_bias.shape.rank), bias, old_bias))
    return bias

  def _standard_normal(self, shape, seed):
    """Draws `[R, *shape]`; member m's from `fold_in(seed, restart_ids[m])` alone."""
    seed = tf.convert_to_tensor(seed)
    return tf.stack([
        tf.random.stateless_normal(
            shape, tf.random.experimental.stateless_fold_in(
                seed, tf.cast(restart_id, seed.dtype)))
        for restart_id in self.restart_ids])

  @tf.autograph.experimental.do_not_convert  # Plain TF ops: nothing to convert.
  def rate_distortion(self, x, seed, stop_theta=None):
    """Per-restart, per-example rate and distortion, one z ~ q_phi(z|x) each.

    Args:
      x: `float32` `Tensor` `[B, D]`, or stacked `[B, K, D]` for a model of members
        (`member_examples`).
      seed: stateless seed, integer `Tensor` `[2]`.
      stop_theta: `None`, Python or `bool` `Tensor`, scalar or `[R]` (per member): stop
        theta's gradient (the inference network alone is trained, as in lagging inference
        networks and LiBI's step 2).

    Returns:
      rate: `[R, B]`, KL(q_phi(z|x) || N(0, I)) exactly.
      distortion: `[R, B]`, -log p_theta(x|z) at a reparameterised z ~ q_phi(z|x).
    """
    examples = self.member_examples(x)
    posterior = self._posterior(examples, self.phi_params())
    rate = tfd.kl_divergence(posterior, self.prior)
    noise = self._standard_normal(tf.shape(posterior.mean())[1:], seed)
    z = posterior.distribution.loc + posterior.distribution.scale * noise
    distortion = -self.likelihood(z, stop_theta).log_prob(examples)
    return rate, distortion

  def log_likelihood_bound(self, x, seed, num_samples):
    """The importance-weighted bound L_K(x) `[R, B]` with q_phi as proposal, K draws.

    L_K(x) = logmeanexp_k [log p_theta(x|z_k) + log p(z_k) - log q_phi(z_k|x)], z_k ~ q;
    K = 1 is the one-sample ELBO (Burda et al. 2016). Draws of member m come from
    `fold_in(seed, restart_ids[m])`. x `[B, D]` or stacked `[B, K, D]`.
    """
    examples = self.member_examples(x)
    posterior = self._posterior(examples, self.phi_params())
    loc, scale = posterior.distribution.loc, posterior.distribution.scale
    noise = self._standard_normal([num_samples, *tf.unstack(tf.shape(loc)[1:])], seed)
    z = loc[:, tf.newaxis] + scale[:, tf.newaxis] * noise          # [R, K, B, 2]
    flat = tf.reshape(z, [self.restarts, -1, LATENT_DIM])
    # The examples repeated K times, as z is flattened: [K B, D], or [R, K B, D].
    tiled = (tf.tile(examples, [num_samples, 1]) if len(examples.shape) == 2
             else tf.tile(examples, [1, num_samples, 1]))
    log_p = tf.reshape(self.likelihood(flat).log_prob(tiled),
                       [self.restarts, num_samples, -1])
    log_q = tfd.Independent(tfd.Normal(loc[:, tf.newaxis], scale[:, tf.newaxis]),
                            1).log_prob(z)
    log_w = log_p + self.prior.log_prob(z) - log_q
    return tf.reduce_logsumexp(log_w, axis=1) - tf.math.log(float(num_samples))

  # ------------------------------------------------------------------------------------
  # Keeping the best model.

  def keep_best(self, score, members=None):
    """For each restart whose `score` `[R]` beats its best so far, copies the live
    parameters into the best ones; returns which did, `bool` `[R]`. With `members`
    (`bool`, scalar or `[R]`), only among those members (whose choice is due)."""
    better = score > self.best_score
    if members is not None:
      better &= members
    for live, best in ((self.theta, self.best_theta), (self.phi, self.best_phi)):
      for k, variable in live.items():
        mask = tf.reshape(better, [-1] + [1] * (variable.shape.rank - 1))
        best[k].assign(tf.where(mask, variable, best[k]))
    self.best_score.assign(tf.where(better, score, self.best_score))
    return better

  def freeze_best(self, members=None):
    """From now on, every restart computes with its best parameters; with `members`
    (`bool`, scalar or `[R]`), those members (and those frozen before)."""
    if members is None:
      self.use_best.assign(tf.ones_like(self.use_best))
    else:
      self.use_best.assign(self.use_best | members)

  def select_members(self, members):
    """A `SyntheticVAE` of the members `members` alone, which takes one data set's `[B, D]`.

    Member i of the result is member `members[i]` of this model: its parameters, best
    copies, score, choices and whether it uses its best copy, and its seeding index, so
    that its draws are this member's (of its run alone too). For the evaluation of a
    batched run, one data set's members at a time, and for a figure of one member.

    Args:
      members: Python `list` of `int`s in `[0, restarts)`.

    Returns:
      `SyntheticVAE` with `restarts = len(members)` and no `member_datasets`.
    """
    members = [int(m) for m in members]
    # Every argument given: a run's gin config (restored) binds the members of the batch.
    model = SyntheticVAE(dataset=self.dataset, restarts=len(members), seed=self.seed,
                         first_restart=0,
                         restart_ids=tuple(self.restart_ids[m] for m in members),
                         member_datasets=None, initial_scale='unit')
    for source, target in ((self.theta, model.theta), (self.phi, model.phi),
                           (self.best_theta, model.best_theta),
                           (self.best_phi, model.best_phi)):
      for k, variable in source.items():
        target[k].assign(tf.gather(variable, members))
    for name in ('best_score', 'use_best', 'selections'):
      value = getattr(self, name)
      if value.shape.rank:
        value = tf.gather(value, members)
      getattr(model, name).assign(tf.broadcast_to(value, [len(members)]))
    return model

  # ------------------------------------------------------------------------------------
  # One restart, for `statistics.information`.

  def parts(self, restart, variance_inflation=TEST_VARIANCE_INFLATION):
    """Restart `restart`'s (encoder, decoder, marginal, proposal) for `information`.

    `encoder(x)` and `proposal(x)` take x `[B, D]` and give q_phi(z|x) (the proposal with
    its variance multiplied by `variance_inflation`), `decoder(z)` takes z `[B, 2]` and
    gives p_theta(x|z), both with batch shape `[B]`; `marginal` is p(z).
    """
    if not 0 <= restart < self.restarts:
      raise ValueError(f'restart must be in [0, {self.restarts}), got {restart}')

    def one(params):
      return {k: v[restart:restart + 1] for k, v in params.items()}

    def posterior(x, scale_factor=1.):
      loc, log_scale = self._inference_outputs(x[tf.newaxis], one(self.phi_params()))
      return tfd.Independent(tfd.Normal(loc[0], tf.exp(log_scale[0]) * scale_factor), 1)

    def decoder(z):
      mean = self.mean(z[tf.newaxis], one(self.theta_params()))[0]
      return tfd.Independent(tfd.Normal(mean, self._noise_scale), 1)

    inflation = float(np.sqrt(variance_inflation))
    return Parts(encoder=posterior, decoder=decoder, marginal=self.prior,
                 proposal=lambda x: posterior(x, inflation))

  def generative_model(self, restart):
    """Restart `restart`'s p_theta as a `data.synthetic.GroundTruth` of the same family.

    theta (its best copy once frozen) in float64, with the fixed noise (and B): the
    model's `mean` and `noise_variance` in NumPy, and `exact_log_likelihood` for the
    linear-Gaussian data sets.
    """
    if not 0 <= restart < self.restarts:
      raise ValueError(f'restart must be in [0, {self.restarts}), got {restart}')
    theta = {k: v[restart].numpy().astype(np.float64) for k, v in self.theta_params().items()}
    family = type(data.ground_truth(self.dataset))
    if self.dataset == 'mobius':
      return family(weights=tuple(theta[f'{kind}{k}'] for k in range(len(theta) // 2)
                                  for kind in ('kernel', 'bias')))
    return family(a=theta['a'])

