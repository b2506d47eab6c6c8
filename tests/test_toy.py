"""Tests of the toy experiment (Section 4.1, Appendix E): exact sums against brute force."""

import json

import gin
import numpy as np
import pytest
from scipy import special
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.experiments import toy
from brokenelbo.utils import cli

NUM_LATENTS = 30


def _documented_data():
  cli.parse_gin(['configs/toy.gin'], [])
  return toy.toy_data()


def _brute_force_data(prob_z1, loc, scale, low, high, num_bins):
  """p(x | z*) from scipy's normal CDF, independently of the library."""
  edges = np.linspace(low, high, num_bins + 1)
  cdf = special.ndtr((edges[np.newaxis, 1:-1] - np.array(loc)[:, np.newaxis])
                     / np.array(scale)[:, np.newaxis])
  cdf = np.concatenate([np.zeros([2, 1]), cdf, np.ones([2, 1])], axis=1)
  likelihood = np.diff(cdf, axis=1)
  latent_probs = np.array([1. - prob_z1, prob_z1])
  return latent_probs, likelihood, latent_probs @ likelihood


def _brute_force_quantities(params, data):
  """Every quantity from explicit numpy tables and loops over the joint."""
  w_e, b_e, w_d, b_d, pi = (np.asarray(p) for p in params)
  x, p = data.x, data.probs
  u = toy.latent_positions(len(w_e), data.low, data.high)
  encoder = np.exp(-(w_e[np.newaxis, :] * x[:, np.newaxis] - b_e[np.newaxis, :]) ** 2)
  encoder /= encoder.sum(axis=1, keepdims=True)  # [J, K]
  decoder = np.exp(-(w_d[np.newaxis, :] * u[:, np.newaxis] - b_d[np.newaxis, :]) ** 2)
  decoder /= decoder.sum(axis=1, keepdims=True)  # [K, J]
  marginal = np.exp(pi - pi.max())
  marginal /= marginal.sum()
  aggregate = p @ encoder
  rate = distortion = mutual_information = 0.
  for j in range(len(x)):
    for i in range(len(w_e)):
      joint = p[j] * encoder[j, i]
      rate += joint * np.log(encoder[j, i] / marginal[i])
      distortion -= joint * np.log(decoder[i, j])
      mutual_information += joint * np.log(encoder[j, i] / aggregate[i])
  model_probs = marginal @ decoder
  class_posteriors = data.likelihood @ encoder
  return dict(
      rate=rate, distortion=distortion, elbo=-(rate + distortion),
      entropy=-np.sum(p * np.log(p)), mutual_information=mutual_information,
      kl_data_to_model=np.sum(p * np.log(p / model_probs)),
      class_separation=.5 * np.abs(class_posteriors[0] - class_posteriors[1]).sum(),
      encoder=encoder, decoder=decoder, reconstruction=encoder @ decoder,
      marginal=marginal, aggregate_posterior=aggregate, model_probs=model_probs,
      decoded_probs=aggregate @ decoder, class_posteriors=class_posteriors)


def _random_params(seed, batch, scale):
  rng = np.random.default_rng(seed)
  return toy.ToyParams(*(tf.constant(scale * rng.standard_normal(batch + [NUM_LATENTS]))
                         for _ in range(5)))


def _model(params, data):
  u = toy.latent_positions(NUM_LATENTS, data.low, data.high)
  return toy.make_model(params, tf.constant(data.x, toy.DTYPE), tf.constant(u, toy.DTYPE))


def test_documented_data_has_half_a_nat_of_mutual_information():
  data = _documented_data()
  latent_probs, likelihood, probs = _brute_force_data(
      0.7, (-0.3, 0.3), (0.1793309044, 0.1793309044), -1., 1., 30)
  np.testing.assert_allclose(data.likelihood, likelihood, rtol=1e-12, atol=1e-15)
  np.testing.assert_allclose(data.probs.sum(), 1., rtol=1e-14)
  np.testing.assert_allclose(data.x, np.linspace(-29. / 30., 29. / 30., 30), rtol=1e-12)
  joint = latent_probs[:, np.newaxis] * likelihood
  brute_force = np.sum(special.xlogy(joint, likelihood / probs))
  np.testing.assert_allclose(brute_force, 0.5, atol=1e-9)
  np.testing.assert_allclose(toy.true_mutual_information(data), 0.5, atol=1e-9)


def test_quantities_match_brute_force_sums():
  data = _documented_data()
  params = _random_params(0, [3], scale=2.)
  quantities = toy.toy_quantities(_model(params, data), data)
  for b in range(3):
    expected = _brute_force_quantities([p[b] for p in params], data)
    for key, value in expected.items():
      actual = quantities[key].numpy()
      actual = actual if key == 'entropy' else actual[b]
      np.testing.assert_allclose(actual, value, rtol=1e-10, atol=1e-13, err_msg=key)


@pytest.mark.parametrize('scale', [0.1, 1., 5.])
def test_information_bounds_hold_for_random_parameters(scale):
  data = _documented_data()
  q = toy.toy_quantities(_model(_random_params(1, [200], scale), data), data)
  entropy, distortion = q['entropy'].numpy(), q['distortion'].numpy()
  mutual_information, rate = q['mutual_information'].numpy(), q['rate'].numpy()
  # H - D <= I_e <= R (Eq. 5 of the paper), with both gaps strictly positive here.
  assert np.all(entropy - distortion < mutual_information)
  assert np.all(mutual_information < rate)
  assert np.all(mutual_information >= 0.)
  assert np.all(q['kl_data_to_model'].numpy() > 0.)
  # The ELBO is a lower bound on log-likelihood: -ELBO = H + KL(p*||g) + E KL(e || posterior).
  assert np.all(-q['elbo'].numpy() >= entropy + q['kl_data_to_model'].numpy())


def test_bounds_are_tight_with_the_encoders_own_decoder_and_marginal():
  """d(x|z) = p*(x) e(z|x) / e(z) gives D = H - I_e; m = e(z) gives R = I_e."""
  data = _documented_data()
  model = _model(_random_params(2, [], scale=1.), data)
  encoder = model.encoder.probs_parameter().numpy()
  aggregate = data.probs @ encoder
  inverse = toy.ToyModel(
      encoder=model.encoder,
      decoder=toy.tfd.Categorical(probs=(data.probs[:, np.newaxis] * encoder / aggregate).T),
      marginal=toy.tfd.Categorical(probs=aggregate))
  q = toy.toy_quantities(inverse, data)
  np.testing.assert_allclose(q['distortion'], q['entropy'] - q['mutual_information'],
                             rtol=1e-12)
  np.testing.assert_allclose(q['rate'], q['mutual_information'], rtol=1e-12)
  np.testing.assert_allclose(q['kl_data_to_model'], 0., atol=1e-14)
  np.testing.assert_allclose(q['elbo'], -q['entropy'], rtol=1e-12)


def test_optimal_model_is_tight():
  data = _documented_data()
  q = toy.toy_quantities(toy.optimal_model(data, NUM_LATENTS), data)
  information = toy.true_mutual_information(data)
  np.testing.assert_allclose(q['rate'], information, rtol=1e-12)
  np.testing.assert_allclose(q['mutual_information'], information, rtol=1e-12)
  np.testing.assert_allclose(q['distortion'], q['entropy'] - information, rtol=1e-12)
  np.testing.assert_allclose(q['elbo'], -q['entropy'], rtol=1e-12)
  np.testing.assert_allclose(q['kl_data_to_model'], 0., atol=1e-14)
  np.testing.assert_allclose(q['model_probs'], data.probs, rtol=1e-12)
  # Two states carry all the mass: z* = 0 on the state at u = -0.3, z* = 1 at u = +0.3.
  assert toy.optimal_states(data, NUM_LATENTS) == [10, 19]
  np.testing.assert_allclose(np.sort(q['marginal'])[-2:], [0.3, 0.7], rtol=1e-14)
  posterior = 0.3 * data.likelihood[0] / data.probs  # p(z* = 0 | x)
  separation = data.likelihood[0] @ posterior - data.likelihood[1] @ posterior
  np.testing.assert_allclose(q['class_separation'], separation, rtol=1e-12)
  np.testing.assert_allclose(q['class_separation'], 0.8467685136, atol=1e-9)


def test_initializations_depend_only_on_their_seed():
  few = toy.initial_params([3, 7], NUM_LATENTS, 30, 0.3)
  many = toy.initial_params(range(10), NUM_LATENTS, 30, 0.3)
  for a, b in zip(few, many):
    np.testing.assert_array_equal(a.numpy(), b.numpy()[[3, 7]])


def test_fit_descends_every_objective_and_seed():
  data = _documented_data()
  initial = toy.initial_params(range(3), NUM_LATENTS, 30, 0.3)
  losses = (lambda r, d: toy.elbo_loss(r, d, 1.),
            lambda r, d: toy.target_rate_loss(r, d, 0.5))
  trained = toy.fit(losses, initial, data, NUM_LATENTS, num_steps=500, learning_rate=0.01,
                    final_learning_rate=0.001, decay_start_fraction=0.5)
  before = toy.toy_quantities(_model(initial, data), data)
  after = toy.toy_quantities(_model(trained, data), data)
  entropy = before['entropy'].numpy()
  elbo_before = before['rate'] + before['distortion']
  assert np.all(after['rate'][0] + after['distortion'][0] < elbo_before)
  assert np.all(after['rate'][0] + after['distortion'][0] >= entropy)
  target_before = before['distortion'] + np.abs(0.5 - before['rate'])
  target_after = after['distortion'][1] + np.abs(0.5 - after['rate'][1])
  assert np.all(target_after < target_before)
  assert np.all(target_after >= entropy - 0.5)


def _run_small(output_dir, overwrite=False):
  cli.parse_gin(['configs/toy.gin'], ['toy_experiment.num_seeds = 2',
                              'toy_experiment.num_steps = 200'])
  return toy.toy_experiment(str(output_dir), overwrite=overwrite)


def test_experiment_writes_results_figure_and_config(tmp_path):
  results = _run_small(tmp_path)
  with open(tmp_path / 'toy.json') as f:
    assert json.load(f) == results
  assert (tmp_path / 'figure2.png').stat().st_size > 10000
  assert 'toy_experiment.num_steps = 200' in (tmp_path / 'operative_config.gin').read_text()
  np.testing.assert_allclose(results['true_mutual_information'], 0.5, atol=1e-9)
  optimal = results['models']['optimal']
  np.testing.assert_allclose(optimal['rate'], 0.5, atol=1e-9)
  np.testing.assert_allclose(optimal['distortion'], results['entropy'] - 0.5, atol=1e-9)
  for name in ('elbo', 'target_rate'):
    model = results['models'][name]
    assert [s['seed'] for s in model['seeds']] == [0, 1]
    for key in toy.SCALAR_KEYS:
      values = [s[key] for s in model['seeds']]
      np.testing.assert_allclose(model[key], np.median(values), rtol=1e-12)
      assert model['min'][key] == min(values) and model['max'][key] == max(values)
    for s in model['seeds']:
      np.testing.assert_allclose(s['elbo'], -(s['rate'] + s['distortion']), rtol=1e-12)
    assert model['figure_seed'] in (0, 1)


def test_experiment_refuses_to_overwrite(tmp_path):
  (tmp_path / 'toy.json').write_text('{}')
  with pytest.raises(errors.UserError, match='--overwrite'):
    _run_small(tmp_path)
  assert (tmp_path / 'toy.json').read_text() == '{}'
  gin.clear_config()
  _run_small(tmp_path, overwrite=True)
  assert 'models' in json.loads((tmp_path / 'toy.json').read_text())


def test_command_line_errors_are_one_line(tmp_path, in_one_process):
  refused, bad = tmp_path / 'refused', tmp_path / 'bad'
  refused.mkdir()
  (refused / 'toy.json').write_text('{}')
  outcomes, _ = in_one_process('toy', [
      [f'--output_dir={refused}'],
      [f'--output_dir={bad}', '--gin_bindings=toy_experiment.no_such_arg = 1']])
  for (status, lines), expected in zip(outcomes, ('--overwrite', 'no_such_arg')):
    assert status == 2 and len(lines) == 1 and lines[0].startswith('error: '), lines
    assert expected in lines[0]
  assert (refused / 'toy.json').read_text() == '{}' and not bad.exists()
