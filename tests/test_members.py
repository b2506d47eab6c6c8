"""Tests of members: one batched `SyntheticVAE` holding several settings x data sets x
restarts of one method (`models.synthetic`, "Members"), on stacked data sets
(`data.synthetic` with a tuple of indices; `test_synthetic.py` checks them), with the
per-member hyperparameters of the losses (`beta_schedule`, `LaggingInference.segments`,
LiBI's epsilons and repeats).

The central check: 2 settings x 2 data sets x 2 restarts trained as one batch of 8 members
end, member by member, as each setting trained alone on its data set (2 restarts), for
every method, and no nearer to any other member's counterpart.
"""

import json

import gin
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.models import synthetic
from brokenelbo.training import lagging
from brokenelbo.training import libi
from brokenelbo.training import losses
from brokenelbo.training import objectives
from brokenelbo.training import trainer as trainer_lib
from brokenelbo.utils import cli
from brokenelbo.utils import seeds

SEED = tf.constant([3, 4], tf.int64)
NAME = 'cubic_jtex'   # Hidden layers of both activations in q: the most to get wrong.


def _variables(model):
  return {f'{group} {k}': v.numpy() for group in ('theta', 'phi')
          for k, v in getattr(model, group).items()}


def test_restart_ids_seed_as_first_restart():
  by_first = synthetic.SyntheticVAE(dataset=NAME, restarts=3, seed=5, first_restart=2)
  by_ids = synthetic.SyntheticVAE(dataset=NAME, restarts=3, seed=5, restart_ids=(2, 3, 4))
  shuffled = synthetic.SyntheticVAE(dataset=NAME, restarts=2, seed=5, restart_ids=(4, 2))
  assert by_first.restart_ids == by_ids.restart_ids == (2, 3, 4)
  x = data.synthetic('train', name=NAME)[:20]
  rate, distortion = by_first.rate_distortion(x, SEED)
  bound = by_first.log_likelihood_bound(x, SEED, 3)
  for model, order in ((by_ids, [0, 1, 2]), (shuffled, [2, 0])):
    for k, value in _variables(model).items():
      np.testing.assert_array_equal(value, _variables(by_first)[k][order], err_msg=k)
    # The draws follow the ids too: the same rates, distortions and bounds, exactly.
    rate_m, distortion_m = model.rate_distortion(x, SEED)
    np.testing.assert_array_equal(rate_m, tf.gather(rate, order))
    np.testing.assert_array_equal(distortion_m, tf.gather(distortion, order))
    np.testing.assert_array_equal(model.log_likelihood_bound(x, SEED, 3),
                                  tf.gather(bound, order))
  # A model of one setting keeps one count of choices, as its checkpoints hold it.
  assert by_first.selections.shape == [] and by_ids.selections.shape == [3]


def test_every_method_that_takes_x_gathers_each_members_data_set():
  # Members (0, 1) see data set 0, members (2, 3) data set 1: each as a model of restarts
  # 0 and 1 on that data set alone, exactly.
  stacked = data.synthetic('train', name=NAME, index=(0, 1))[:30]
  members = synthetic.SyntheticVAE(dataset=NAME, restarts=4, seed=1, restart_ids=(0, 1) * 2,
                                   member_datasets=(0, 0, 1, 1))
  alone = synthetic.SyntheticVAE(dataset=NAME, restarts=2, seed=1)
  members.assign(phi={'log_scale_bias': [-1., -2.]})
  alone.assign(phi={'log_scale_bias': [-1., -2.]})
  for k in (0, 1):
    mine = slice(2 * k, 2 * k + 2)
    x = stacked[:, k]
    for got, expected in (
        (members.rate_distortion(stacked, SEED), alone.rate_distortion(x, SEED)),
        ([members.log_likelihood_bound(stacked, SEED, 4)],
         [alone.log_likelihood_bound(x, SEED, 4)]),
        ([members.codes(stacked)], [alone.codes(x)]),
        ([members.posterior(stacked, scale_factor=2.).stddev()],
         [alone.posterior(x, scale_factor=2.).stddev()]),
        ([members.laplace_log_scale(stacked)], [alone.laplace_log_scale(x)])):
      for g, e in zip(got, expected):
        np.testing.assert_allclose(g[mine], e, rtol=1e-6, atol=1e-6)
  # The Laplace scale, set for some members only.
  before = members.phi['log_scale_bias'].numpy()
  bias = members.set_laplace_scale(stacked, members=tf.constant([False, True, True, False]))
  after = members.phi['log_scale_bias'].numpy()
  np.testing.assert_array_equal(after[[0, 3]], before[[0, 3]])
  np.testing.assert_array_equal(after[[1, 2]], bias.numpy()[[1, 2]])
  kernel = members.phi['log_scale_kernel'].numpy()
  assert np.all(kernel[[1, 2]] == 0.) and np.all(kernel[[0, 3]] != 0.)
  # 'laplace' as the initial scale reads each member's data set.
  members = synthetic.SyntheticVAE(dataset=NAME, restarts=4, seed=1, restart_ids=(0, 1) * 2,
                                   member_datasets=(1, 1, 0, 0), initial_scale='laplace')
  for k, mine in ((0, [2, 3]), (1, [0, 1])):
    alone = synthetic.SyntheticVAE(dataset=NAME, restarts=2, seed=1)
    alone.set_laplace_scale(data.synthetic('train', name=NAME, index=k))
    np.testing.assert_allclose(members.phi['log_scale_bias'].numpy()[mine],
                               alone.phi['log_scale_bias'].numpy(), rtol=1e-6)


def test_members_are_checked():
  x = data.synthetic('train', name=NAME)[:10]
  stacked = data.synthetic('train', name=NAME, index=(0, 1))[:10]
  plain = synthetic.SyntheticVAE(dataset=NAME, restarts=2, seed=0)
  members = synthetic.SyntheticVAE(dataset=NAME, restarts=2, seed=0, member_datasets=(0, 2))
  with pytest.raises(errors.UserError, match='stacked data .* needs SyntheticVAE.member_'):
    plain.rate_distortion(stacked, SEED)
  with pytest.raises(errors.UserError, match=r'member_datasets = \(0, 2\) needs stacked'):
    members.codes(x)
  with pytest.raises(errors.UserError, match=r'must each be in \[0, 2\)'):
    members.rate_distortion(stacked, SEED)
  with pytest.raises(errors.UserError, match=r'restart_ids = \(0, 1, 2\): must have one '
                     'value per member, SyntheticVAE.restarts = 2'):
    synthetic.SyntheticVAE(dataset=NAME, restarts=2, restart_ids=(0, 1, 2))
  with pytest.raises(errors.UserError, match='first_restart = 3: must be 0'):
    synthetic.SyntheticVAE(dataset=NAME, restarts=2, restart_ids=(0, 1), first_restart=3)
  with pytest.raises(errors.UserError, match=r'restart_ids = \(-1, 0\): must be None or'):
    synthetic.SyntheticVAE(dataset=NAME, restarts=2, restart_ids=(-1, 0))
  # Against the run's data, as bound in gin.
  gin.clear_config()
  cli.parse_gin([], [f"synthetic.name = '{NAME}'", 'synthetic.index = (2, 4)'])
  with pytest.raises(errors.UserError, match='stacks 2 data sets: bind SyntheticVAE.member_'):
    synthetic.SyntheticVAE(restarts=2, seed=0)
  with pytest.raises(errors.UserError, match=r'must each be in \[0, 2\), the data sets of '
                     r'synthetic\.index'):
    synthetic.SyntheticVAE(restarts=2, seed=0, member_datasets=(1, 2))
  gin.clear_config()
  with pytest.raises(errors.UserError, match='member_datasets needs stacked data'):
    synthetic.SyntheticVAE(restarts=2, seed=0, member_datasets=(0, 0))
  # Per-member settings of another length than the members, or of each other.
  gin.bind_parameter('beta_schedule.beta', (1., 2., 3.))
  with pytest.raises(errors.UserError, match='beta_schedule has 3 values'):
    losses.rate_distortion_loss(plain, x, SEED, 0, tf.constant(0.))
  gin.clear_config()
  with pytest.raises(errors.UserError, match=r'start_beta = \(0\.0,\): must have one value'):
    objectives.beta_schedule(0., beta=(1., 2.), anneal_epochs=2., start_beta=(0.,))
  with pytest.raises(errors.UserError, match='segments has 3 values'):
    lagging.LaggingInference(epochs=4, segments=(1, 2, 3))(plain, x, SEED, 0, 0.)
  with pytest.raises(errors.UserError, match=r'LiBI\.epsilon_mu = \(0\.2,\): must have one '
                     r'value per member, as LiBI\.repeats = \(1, 2\)'):
    libi.LiBI(epochs=4, repeats=(1, 2), epsilon_mu=(0.2,))
  with pytest.raises(errors.UserError, match='LiBI has 3 values per setting'):
    libi.LiBI(epochs=4, epsilon_hz=(1., 2., 3.))(plain, x, SEED, 0, tf.constant(0.))
  with pytest.raises(errors.UserError, match='LiBI.repeats per member needs a model of'):
    libi.LiBI(epochs=4, repeats=(1, 2))(plain, x, SEED, 0, tf.constant(0.))
  with pytest.raises(errors.UserError, match=r'LiBI\.epsilon_hz = \(1\.0, 0\.0\): must be'):
    libi.LiBI(epochs=4, epsilon_hz=(1., 0.))
  with pytest.raises(errors.UserError, match=r'segments = \(2, 0\): must be'):
    lagging.LaggingInference(epochs=4, segments=(2, 0))


def test_a_member_whose_penalty_has_weight_0_gets_no_gradient_from_it():
  # LiBI computes the step-1 penalty of every member while any is in step 1; a member in
  # step 2 weighs it 0, and its gradient must then be 0 even where the penalty's is not
  # finite (inf codes here), or one member's codes would make every member's step bad.
  codes = np.random.default_rng(0).normal(size=(2, 40, 2)).astype(np.float32)
  codes[1, 0] = np.inf
  codes = tf.constant(codes)
  with tf.GradientTape() as tape:
    tape.watch(codes)
    penalty = libi.compiled_step1_penalty(codes, 1., 0.5, 0.5)['penalty']
    total = tf.reduce_sum(tf.where([True, False], penalty, 0.))
  gradient = tape.gradient(total, codes).numpy()
  assert np.all(gradient[1] == 0.) and np.all(np.isfinite(gradient[0]))
  with tf.GradientTape() as tape:
    tape.watch(codes)
    alone = libi.compiled_step1_penalty(codes[:1], 1., 0.5, 0.5)['penalty'][0]
  np.testing.assert_allclose(gradient[0], tape.gradient(alone, codes)[0], rtol=1e-5,
                             atol=1e-6)


# The batch of the equivalence test: 2 settings x 2 data sets x 2 restarts, member
# m = 4 s + 2 k + r of setting s, data set k, restart r.
SETTINGS, DATASETS, RESTARTS = 2, 2, 2
MEMBERS = SETTINGS * DATASETS * RESTARTS
MEMBER_DATASETS = tuple(m // RESTARTS % DATASETS for m in range(MEMBERS))
RESTART_IDS = tuple(m % RESTARTS for m in range(MEMBERS))
# Each member follows Adam on its own loss with epsilon (members) x the bound epsilon
# (the losses average over members): the same, EPSILON, alone (2 restarts) and batched
# (8 members). Large enough that a wrongly scaled epsilon would show (binding epsilon
# times the members instead, the beta-VAE's parameters differ by 8e-4).
EPSILON = 1e-3


def _per_member(values):
  """One value per member from one per setting."""
  return tuple(values[m // (DATASETS * RESTARTS)] for m in range(MEMBERS))


def _train(model, loss, x, steps, epsilon):
  """`steps` full-batch steps of plain Adam (learning rate 0.01), epoch = step."""
  adam = tf_keras.optimizers.Adam(0.01, epsilon=epsilon)
  for step in range(steps):
    with tf.GradientTape() as tape:
      value, _ = loss(model, x, seeds.step_seed(0, step), tf.constant(step, tf.int64),
                      tf.constant(float(step)))
    grads = tape.gradient(value, model.trainable_variables,
                          unconnected_gradients=tf.UnconnectedGradients.ZERO)
    adam.apply_gradients(zip(grads, model.trainable_variables))
  return model


def _state(model, x):
  """Every parameter, best copy and choice of each restart, and its rate and distortion
  (batch means) after training, `{name: [R, ...]}`."""
  state = {f'{group} {k}': v.numpy() for group in ('theta', 'phi', 'best_theta', 'best_phi')
           for k, v in getattr(model, group).items()}
  rate, distortion = model.rate_distortion(x, SEED)
  state.update(rate=rate.numpy().mean(axis=-1), distortion=distortion.numpy().mean(axis=-1),
               best_score=model.best_score.numpy(), use_best=model.use_best.numpy(),
               selections=np.broadcast_to(model.selections.numpy(), [model.restarts]))
  return state


def _gin_settings(bindings):
  gin.clear_config()
  gin.bind_parameter('beta_schedule.anneal_epochs', 10.)  # Used where the betas are bound.
  for name, value in bindings.items():
    gin.bind_parameter(name, value)


# Per method: (the data set type, the loss of given settings, {argument or gin binding:
# one value per setting}, steps). The settings differ where each method's do: betas,
# annealing, segments, epsilons and repeats.
LIBI = dict(epochs=25, step1_fraction=0.5, selection_samples=8)
LIBI_SETTINGS = {'repeats': (1, 2), 'epsilon_hz': (1., 10.), 'epsilon_sigma': (0.5, 0.2),
                 'epsilon_mu': (0.5, 0.2)}
METHODS = {
    # On LinearJTEx the rate weighs enough against the distortion for beta to matter.
    'beta_vae': ('linear_jtex', lambda: losses.rate_distortion_loss,
                 {'beta_schedule.beta': (0.5, 5.)}, 40),
    'beta_vae_anneal': ('linear_jtex', lambda: losses.rate_distortion_loss,
                        {'beta_schedule.beta': (1., 5.), 'beta_schedule.start_beta': (0., 0.5)},
                        40),
    'lagging': ('cubic_jtex',
                lambda segments: lagging.LaggingInference(epochs=24, segments=segments),
                {'segments': (2, 3)}, 24),
    # Repeats of 24 and 12 epochs: choices at 24, and at 12 and 24 (the last epoch).
    'libi_keep': ('linear_jtex', lambda **s: libi.LiBI(**LIBI, **s), LIBI_SETTINGS, 25),
    'libi_laplace': ('linear_jtex', lambda **s: libi.LiBI(**LIBI, step2_scale='laplace', **s),
                     LIBI_SETTINGS, 25),
}
# Batched against alone: the models compute the same numbers but for LiBI's penalty, which
# XLA compiles (`libi.compiled_step1_penalty`) into kernels that round differently for a
# batch of 8 and of 2 (2e-7 of the penalty, measured). From q's initial codes near 0, HZ
# whitens them by their tiny spread: the penalty's gradient reaches 1e5, its rounding
# errors 1e-1, and Adam's first step turns those on near-zero elements into differences of
# O(learning rate). The LiBI cases therefore start q at the best mean-field posterior of
# the true model (codes of unit spread). Measured differences then: 0 (bit-identical) for
# the other methods; for LiBI at most 1.4e-7 in the parameters, and 2.3e-5 (relative
# 2e-6; 3.6e-6 where near 0) in the batch means of the rate, distortion and score, sums of
# terms near 1e2 that cancel. A member that used another member's data set, seed or setting
# would differ by more than 100 x ATOL in its parameters (asserted).
RTOL, ATOL = 1e-5, 1e-5


@pytest.mark.parametrize('method', list(METHODS))
def test_members_train_as_each_setting_alone(method):
  name, make_loss, settings, steps = METHODS[method]
  gin_bound = all('.' in binding for binding in settings)
  stacked = data.synthetic('train', name=name, index=(0, 1))[:100]

  def start(model):
    if method.startswith('libi'):
      model.assign(phi=synthetic.mean_field_posterior_phi(name))
    return model

  alone = {}
  for s in range(SETTINGS):
    setting = {binding: values[s] for binding, values in settings.items()}
    for k in range(DATASETS):
      _gin_settings(setting if gin_bound else {})
      loss = make_loss() if gin_bound else make_loss(**setting)
      model = start(synthetic.SyntheticVAE(dataset=name, restarts=RESTARTS, seed=0))
      _train(model, loss, stacked[:, k], steps, EPSILON / RESTARTS)
      alone[s, k] = _state(model, stacked[:, k])
  batched_settings = {binding: _per_member(values) for binding, values in settings.items()}
  _gin_settings(batched_settings if gin_bound else {})
  loss = make_loss() if gin_bound else make_loss(**batched_settings)
  model = start(synthetic.SyntheticVAE(dataset=name, restarts=MEMBERS, seed=0,
                                       restart_ids=RESTART_IDS,
                                       member_datasets=MEMBER_DATASETS))
  batched = _state(_train(model, loss, stacked, steps, EPSILON / MEMBERS), stacked)
  gin.clear_config()
  worst = {}
  for m in range(MEMBERS):
    s, k, r = m // (DATASETS * RESTARTS), MEMBER_DATASETS[m], RESTART_IDS[m]
    for key, value in batched.items():
      np.testing.assert_allclose(value[m], alone[s, k][key][r], rtol=RTOL, atol=ATOL,
                                 err_msg=f'{method}: member {m}, {key}')
    # The other settings' and data sets' restart r: far from member m.
    for other in alone:
      if other != (s, k):
        worst[m, other] = max(np.max(np.abs(batched[key][m] - alone[other][key][r]))
                              for key in batched if key.startswith(('theta', 'phi')))
  assert min(worst.values()) > 100. * ATOL, min(worst.items(), key=lambda item: item[1])
  if method.startswith('libi'):  # Setting 1 (2 repeats) froze, setting 0 (1 repeat) too.
    assert list(batched['selections']) == [1] * 4 + [2] * 4
    assert batched['use_best'].all()


def test_a_run_of_members_trains_and_reports_each_member(tmp_path):
  # LiBI on 2 data sets x 2 settings (1 and 2 repeats), one restart each, bound through gin
  # as a study would bind it (epsilon: R / M = 1 / 4 of 1e-8); the evaluation reports every
  # member, each as its setting's run alone on its data set.
  common = ["synthetic.name = 'linear_jtex'", 'EPOCHS = 3', "train.eval_splits = ('validation',)",
            'train.eval_every_epochs = 3', 'train.log_every_steps = 3']
  cli.parse_gin(['configs/libi/libi.gin'], common + [
      'synthetic.index = (0, 1)', 'SyntheticVAE.restarts = 4',
      'SyntheticVAE.restart_ids = (0, 0, 0, 0)', 'SyntheticVAE.member_datasets = (0, 1, 0, 1)',
      'LiBI.repeats = (1, 1, 2, 2)', 'LiBI.epsilon_hz = (1., 1., 10., 10.)',
      'normalized_adam.epsilon = 2.5e-9'])
  results = trainer_lib.train(model_dir=str(tmp_path / 'members'))['validation']
  per_member = [results[f'elbo_{m}'] for m in range(4)]
  assert all(np.isfinite(per_member)) and 'elbo_4' not in results
  np.testing.assert_allclose(results['elbo'], np.mean(per_member), rtol=1e-6)
  with open(tmp_path / 'members' / 'metrics.jsonl') as f:
    records = [json.loads(line) for line in f]
  assert [(r['step'], r['split']) for r in records] == [(3, 'validation')]
  assert {f'rate_{m}' for m in range(4)} <= set(records[0]) and records[0]['beta'] == 1.
  with open(tmp_path / 'members' / 'operative_config.gin') as f:
    assert 'SyntheticVAE.member_datasets = (0, 1, 0, 1)' in f.read()
  # Member 3 (2 repeats, eps_HZ 10, data set 1) against that setting alone. Measured: 1e-4
  # of the rate (LiBI's compiled penalty rounds by batch shape, see above), 1e-7 of the
  # distortion; the other members' values differ from it by 0.9% and more.
  gin.clear_config()
  cli.parse_gin(['configs/libi/libi.gin'], common + [
      'synthetic.index = 1', 'SyntheticVAE.restarts = 1', 'LiBI.repeats = 2',
      'LiBI.epsilon_hz = 10.'])
  alone = trainer_lib.train(model_dir=str(tmp_path / 'alone'))['validation']
  for key in ('rate', 'distortion', 'elbo'):
    np.testing.assert_allclose(results[f'{key}_3'], alone[f'{key}_0'], rtol=1e-3, err_msg=key)
    for m in range(3):
      assert abs(results[f'{key}_{m}'] / alone[f'{key}_0'] - 1.) > 5e-3, (key, m)
  gin.clear_config()


def test_per_member_beta_is_a_scalar_in_the_records():
  cli.parse_gin([], ['beta_schedule.beta = (2., 4.)', 'beta_schedule.start_beta = 0.',
                     'beta_schedule.anneal_epochs = 4.'])
  np.testing.assert_allclose(objectives.beta_schedule(tf.constant(2.)), [1., 2.])
  assert losses.metrics_at(losses.rate_distortion_loss, 2.) == {'beta': 1.5}
  gin.clear_config()
