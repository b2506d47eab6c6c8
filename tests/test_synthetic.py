"""Tests for `brokenelbo.data.synthetic`: the ground-truth models of Appendix E, their draws
(one data set, or several stacked); and for the seed that
`brokenelbo.models.synthetic.SyntheticVAE` takes when given none."""

import gin
import numpy as np
import pytest
import scipy.stats
import tf_keras

from brokenelbo import errors
from brokenelbo.data import synthetic
from brokenelbo.models import synthetic as synthetic_models
from brokenelbo.training import trainer
from brokenelbo.utils import cli

DATA_DIMS = {'linear_jtex': 2, 'cubic_jtex': 2, 'gaussian': 4, 'mobius': 2}


@pytest.mark.parametrize('name', synthetic.NAMES)
def test_loader_shapes_and_determinism(name):
  arrays = {(split, index): synthetic.synthetic(split, name=name, index=index)
            for split in synthetic.SPLITS for index in (0, 4)}
  for (split, index), x in arrays.items():
    assert x.dtype == np.float32
    assert x.shape == (synthetic.NUM_EXAMPLES, DATA_DIMS[name])
    assert np.all(np.isfinite(x))
    np.testing.assert_array_equal(x, synthetic.synthetic(split, name=name, index=index))
  keys = list(arrays)
  for i, first in enumerate(keys):
    for second in keys[i + 1:]:
      assert not np.allclose(arrays[first], arrays[second]), (first, second)


def test_stacked_data_sets_are_the_single_calls():
  for name in ('linear_jtex', 'gaussian'):
    for split in synthetic.SPLITS:
      stacked = synthetic.synthetic(split, name=name, index=(3, 0, 3))
      assert stacked.shape == (synthetic.NUM_EXAMPLES, 3, DATA_DIMS[name])
      assert stacked.dtype == np.float32
      for k, index in enumerate((3, 0, 3)):
        np.testing.assert_array_equal(stacked[:, k],
                                      synthetic.synthetic(split, name=name, index=index))
  for bad in ((0, 5), (), (-1,), 5, (1.5,)):
    with pytest.raises(errors.UserError) as info:
      synthetic.synthetic('train', index=bad)
    assert str(info.value).splitlines()[0] == (  # The line a command line reports.
        f'synthetic.index = {bad!r}: must be an integer in [0, 4] or a non-empty tuple, '
        'each an integer in [0, 4]')
  # Bound through gin, as a run binds it.
  gin.clear_config()
  cli.parse_gin([], ["synthetic.name = 'mobius'", 'synthetic.index = (0, 1)'])
  np.testing.assert_array_equal(synthetic.synthetic('test')[:, 1],
                                synthetic.synthetic('test', name='mobius', index=1))
  gin.clear_config()
  with pytest.raises(errors.UserError, match=r'synthetic\.index = \(0, 7\): must be'):
    cli.parse_gin([], ['synthetic.index = (0, 7)'])
  gin.clear_config()


def test_names_draw_different_latents():
  _, z_linear = synthetic.ground_truth('linear_jtex').sample(10, seed=3)
  _, z_cubic = synthetic.ground_truth('cubic_jtex').sample(10, seed=3)
  np.testing.assert_array_equal(z_linear, z_cubic)   # same seed, same latents
  seeds = {synthetic.dataset_seed(name, index, split) for name in synthetic.NAMES
           for index in range(synthetic.NUM_DATASETS) for split in synthetic.SPLITS}
  assert len(seeds) == len(synthetic.NAMES) * synthetic.NUM_DATASETS * 3


@pytest.mark.parametrize('name', synthetic.NAMES)
def test_sample_is_seeded(name):
  model = synthetic.ground_truth(name)
  x, z = model.sample(100, seed=7)
  x_again, z_again = model.sample(100, seed=7)
  assert x.dtype == z.dtype == np.float32
  assert x.shape == (100, DATA_DIMS[name]) and z.shape == (100, 2)
  np.testing.assert_array_equal(x, x_again)
  np.testing.assert_array_equal(z, z_again)
  assert not np.allclose(x, model.sample(100, seed=8)[0])
  # x - f(z) is the noise: zero mean, the stated variance (5,000 draws: 2% standard error).
  x, z = model.sample(5000, seed=9)
  residual = x.astype(np.float64) - model.mean(z.astype(np.float64))
  np.testing.assert_allclose(residual.var(axis=0), model.noise_variance, rtol=0.1)
  assert np.all(np.abs(residual.mean(axis=0)) < 5 * np.sqrt(model.noise_variance / 5000))


def test_linear_marginal_covariance_is_aat_plus_sigma2():
  a = np.array(synthetic.JTEX_A)
  expected = a @ a.T + 0.01 * np.eye(2)
  for b in (0.006, 0.0, 0.009):
    model = synthetic.LinearJTEx(b=np.diag([b, b]))
    np.testing.assert_allclose(model.marginal_covariance, expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(model.scale_tril @ model.scale_tril.T,
                               a @ a.T + np.diag([b, b]), atol=1e-12)
    np.testing.assert_allclose(model.noise_variance, [0.01 - b] * 2)
  default = synthetic.LinearJTEx()
  np.testing.assert_allclose(np.diag(default.b), [0.006, 0.006])
  np.testing.assert_allclose(default.scale_tril, np.tril(default.scale_tril))


def test_gaussian_marginal_covariance():
  model = synthetic.Gaussian()
  a = np.array(synthetic.GAUSSIAN_A)
  assert a.shape == (2, 4)
  np.testing.assert_allclose(model.marginal_covariance, a.T @ a + 1e-6 * np.eye(4),
                             atol=1e-15)


@pytest.mark.parametrize('name', ['linear_jtex', 'gaussian'])
def test_sample_covariance_matches_closed_form(name):
  model = synthetic.ground_truth(name)
  n = 200000
  x, _ = model.sample(n, seed=11)
  x = x.astype(np.float64)
  cov = model.marginal_covariance
  # Standard error of each entry of a Gaussian sample covariance.
  stderr = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
  assert np.all(np.abs(np.cov(x, rowvar=False) - cov) < 5 * stderr + 1e-7)
  assert np.all(np.abs(x.mean(axis=0)) < 5 * np.sqrt(np.diag(cov) / n) + 1e-7)


@pytest.mark.parametrize('name', ['linear_jtex', 'gaussian'])
def test_exact_log_likelihood_is_the_gaussian_logpdf(name):
  model = synthetic.ground_truth(name)
  x = synthetic.synthetic('test', name=name, index=2)
  expected = scipy.stats.multivariate_normal(np.zeros(model.data_dim),
                                             model.marginal_covariance).logpdf(x)
  got = model.exact_log_likelihood(x)
  assert got.shape == (synthetic.NUM_EXAMPLES,)
  np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-9)


def test_cubic_is_the_cubed_linear_mean():
  z = np.random.default_rng(0).standard_normal((50, 2))
  linear, cubic = synthetic.LinearJTEx(), synthetic.CubicJTEx()
  np.testing.assert_allclose(cubic.mean(z), linear.mean(z)**3, rtol=1e-12)
  np.testing.assert_allclose(cubic.noise_variance, linear.noise_variance)
  assert not hasattr(cubic, 'exact_log_likelihood')


def test_mobius_transform():
  a, b, c, d = synthetic.MOBIUS_COEFFICIENTS
  assert (a, b, c, d) == (1, 1 + 4j, 1, 7 + 4j)
  np.testing.assert_allclose(synthetic.mobius_transform([[0.0, 0.0]]),
                             [[23 / 65, 24 / 65]], rtol=1e-12)
  w = 0.3 - 1.2j
  m = (w + 1 + 4j) / (w + 7 + 4j)
  np.testing.assert_allclose(synthetic.mobius_transform([0.3, -1.2]), [m.real, m.imag])


def test_mobius_network_matches_its_stated_error():
  model = synthetic.Mobius()
  shapes = [w.shape for w in model.weights]
  assert shapes == [(2, 50), (50,), (50, 50), (50,), (50, 2), (2,)]
  z = np.random.default_rng(2024).standard_normal((1000000, 2))
  squared = np.mean((model.mean(z) - synthetic.mobius_transform(z))**2, axis=1)
  # The overall RMS is dominated by a few far draws, so it varies more between samples.
  assert np.sqrt(squared.mean()) < 1.5 * synthetic.MOBIUS_RMS_ERROR
  bulk = np.linalg.norm(z, axis=1) < 3.5
  assert np.sqrt(squared[bulk].mean()) < 1.1 * synthetic.MOBIUS_BULK_RMS_ERROR
  assert synthetic.MOBIUS_RMS_ERROR < 0.1 * np.sqrt(synthetic.MOBIUS_SIGMA2)
  # The same weights as plain `mlp` math.
  np.testing.assert_allclose(synthetic.mlp(z[:5], model.weights), model.mean(z[:5]))


def test_fit_mobius_network_is_deterministic_and_learns():
  fit = synthetic.fit_mobius_network(hidden=(8,), num_samples=300, max_iterations=30,
                                     test_samples=1000)
  again = synthetic.fit_mobius_network(hidden=(8,), num_samples=300, max_iterations=30,
                                       test_samples=1000)
  for w, w_again in zip(fit['weights'], again['weights']):
    np.testing.assert_array_equal(w, w_again)
  assert [w.shape for w in fit['weights']] == [(2, 8), (8,), (8, 2), (2,)]
  z = np.random.default_rng(0).standard_normal((1000, 2))
  spread = np.sqrt(np.mean((synthetic.mobius_transform(z)
                            - synthetic.mobius_transform(z).mean(axis=0))**2))
  assert fit['test_rms_error'] < 0.1 * spread
  assert set(fit['arrays']) == {'num_layers', 'w0', 'b0', 'w1', 'b1'}


@pytest.mark.parametrize('kwargs', [
    {'split': 'train', 'name': 'linear'},
    {'split': 'valid', 'name': 'gaussian'},
    {'split': 'test', 'name': 'mobius', 'index': 5},
    {'split': 'test', 'name': 'mobius', 'index': -1},
    {'split': 'test', 'name': 'mobius', 'index': 1.0},
])
def test_bad_arguments_raise_user_error(kwargs):
  with pytest.raises(errors.UserError) as info:
    synthetic.synthetic(**kwargs)
  # gin appends the configurable's name on later lines; the message is the first, naming
  # the binding of a declared domain (`brokenelbo.domains`) or, for the split, the loader.
  bad = 'split' if kwargs['split'] not in synthetic.SPLITS else next(
      key for key in ('name', 'index') if key in kwargs and key != 'name' or (
          key == 'name' and kwargs['name'] not in synthetic.NAMES))
  first = str(info.value).splitlines()[0]
  assert first.startswith('synthetic: ' if bad == 'split' else f'synthetic.{bad} = '), first


def test_ground_truth_unknown_name():
  with pytest.raises(errors.UserError, match='unknown data set'):
    synthetic.ground_truth('moebius')


def test_loader_is_gin_configurable():
  gin.parse_config("synthetic.name = 'gaussian'\nsynthetic.index = 3")
  np.testing.assert_array_equal(synthetic.synthetic('validation'),
                                synthetic.synthetic('validation', name='gaussian', index=3))


def _initial_parameters(model):
  return {v.name: v.numpy() for v in model.trainable_variables}


def _assert_same_parameters(first, second):
  first, second = _initial_parameters(first), _initial_parameters(second)
  assert first.keys() == second.keys()
  for name, value in first.items():
    np.testing.assert_array_equal(value, second[name], err_msg=name)


def test_default_seed_is_deterministic_and_leaves_numpy_alone():
  gin.clear_config()
  np.random.seed(1)
  state = np.random.get_state()
  first = synthetic_models.SyntheticVAE(dataset='cubic_jtex', restarts=2)
  after = np.random.get_state()
  assert state[0] == after[0] and state[2:] == after[2:]
  np.testing.assert_array_equal(state[1], after[1])  # Nothing drawn from NumPy's generator.
  np.random.seed(2)  # Another global state changes nothing.
  second = synthetic_models.SyntheticVAE(dataset='cubic_jtex', restarts=2)
  _assert_same_parameters(first, second)
  assert first.seed == second.seed == synthetic_models.run_seed()
  other = synthetic_models.SyntheticVAE(dataset='cubic_jtex', restarts=2, seed=first.seed + 1)
  assert not np.array_equal(first.theta['a'].numpy(), other.theta['a'].numpy())


@pytest.mark.parametrize('train_seed', [None, 0, 7])
def test_default_seed_is_the_one_train_seeded_numpy_with(train_seed):
  # `train` calls `tf_keras.utils.set_random_seed(train.seed)` just before it builds the
  # model; the default seed is the first draw that NumPy's global generator then gave.
  gin.clear_config()
  if train_seed is not None:
    gin.parse_config(f'train.seed = {train_seed}')
  tf_keras.utils.set_random_seed(cli.configured_arguments(trainer.train)['seed'])
  seeded = int(np.random.randint(2**31 - 1))
  np.random.seed(123)
  assert synthetic_models.run_seed() == seeded
  _assert_same_parameters(synthetic_models.SyntheticVAE(dataset='linear_jtex', restarts=3),
                          synthetic_models.SyntheticVAE(dataset='linear_jtex', restarts=3,
                                                        seed=seeded))
  gin.clear_config()

