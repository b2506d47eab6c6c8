"""Tests of `experiments.bench`: FLOP counts of loops, of the importance-weighted bound and of
an AIS transition, and their timing fields, on the `---` family under `configs/smoke.gin`."""

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import data
from brokenelbo import errors
from brokenelbo.data.mnist import IMAGE_SHAPE  # pylint: disable=g-importing-member
from brokenelbo.experiments import bench
from brokenelbo.training import restore

CONFIG = ['configs/---.gin', 'configs/smoke.gin']


@pytest.fixture(scope='module')
def vae():
  gin.clear_config()
  model = restore.run_settings(CONFIG)['model']()
  model.rate_distortion(tf.zeros([1, *IMAGE_SHAPE]), tf.constant([0, 0]))  # Builds it.
  gin.clear_config()
  return model


def _per_example_flops(vae):
  """`step_flops` of one encoder pass (a draw and its density, as the proposal) and of one
  decoder and marginal pass, each traced alone on one example."""
  seed = tf.constant([0, 0], tf.int64)
  encoder = tf.function(lambda x: vae.encoder(x).experimental_sample_and_log_prob(seed=seed))
  marginal = vae.marginal_distribution()
  decoder = tf.function(lambda z, x: vae.decoder(z).log_prob(x) + marginal.log_prob(z))
  x = tf.TensorSpec([1, *IMAGE_SHAPE])
  return (bench.step_flops(encoder.get_concrete_function(x).graph),
          bench.step_flops(decoder.get_concrete_function(
              tf.TensorSpec([1, vae.latent_size]), x).graph))


def _map_matmul(x, indices):
  w = tf.ones([4, 5])
  return tf.map_fn(lambda k: tf.matmul(x, w) * tf.cast(k, tf.float32), indices,
                   fn_output_signature=tf.float32)


def test_step_flops_counts_a_loop_body_once_per_iteration():
  x = tf.TensorSpec([3, 4])
  graph = tf.function(_map_matmul).get_concrete_function(
      x, tf.TensorSpec([7], tf.int32)).graph
  assert bench.step_flops(graph) == 7 * 2 * 3 * 4 * 5
  unknown = tf.function(_map_matmul).get_concrete_function(
      x, tf.TensorSpec([None], tf.int32)).graph
  with pytest.raises(NotImplementedError, match='unknown number of times'):
    bench.step_flops(unknown)


def test_bound_flops_are_an_encoder_pass_per_segment_and_a_decoder_pass_per_draw(vae):
  encoder, decoder = _per_example_flops(vae)
  assert encoder > 0 and decoder > 0
  # 5 examples in batches of 2, 2, 1; K = 3 in segments of 2 and 1 draws.
  assert (bench.importance_weighted_flops(vae, IMAGE_SHAPE, 5, 3, 2, 2)
          == 5 * 2 * encoder + 5 * 3 * decoder)
  # With whole batches and segments the count is linear in examples x K.
  base = bench.importance_weighted_flops(vae, IMAGE_SHAPE, 4, 4, 2, 2)
  assert bench.importance_weighted_flops(vae, IMAGE_SHAPE, 8, 4, 2, 2) == 2 * base
  assert bench.importance_weighted_flops(vae, IMAGE_SHAPE, 4, 8, 2, 2) == 2 * base


def test_benchmark_family_times_the_bound(vae):
  settings = restore.run_settings(CONFIG)
  result = bench.benchmark_family(
      settings, data.static_mnist('test')[:64], steps=1, repeats=1, warmup=0, xla=False,
      eval_batches=1, num_samples=2, naive_repeats=0, peak_flops=1e11, iw_examples=6,
      iw_num_samples=4, iw_batch_size=4, iw_samples_per_chunk=2)
  assert result['iw_decoder_passes'] == 6 * 4
  assert result['iw_flops'] == bench.importance_weighted_flops(vae, IMAGE_SHAPE, 6, 4, 4, 2)
  assert result['iw_seconds'] > 0
  # The first call compiles the chunk: much longer than a call of 24 tiny decoder passes.
  assert result['iw_first_call_seconds'] > result['iw_seconds']
  np.testing.assert_allclose(result['iw_decoder_passes_per_second'],
                             24 / result['iw_seconds'], rtol=1e-12)
  np.testing.assert_allclose(result['iw_flop_utilization'],
                             result['iw_flops'] / result['iw_seconds'] / 1e11, rtol=1e-12)
  np.testing.assert_allclose(result['iw_to_train_utilization'],
                             result['iw_flop_utilization'] / result['train_flop_utilization'],
                             rtol=1e-12)
  assert 'suite' not in result
  line = bench.summary_line('---', result, 2)
  assert (f"IW bound {result['iw_decoder_passes_per_second']:.0f} decoder passes/s "
          '(6 examples x K=4, ') in line


def _decoder_gradient_flops(vae):
  """`step_flops` of log d(x|z) + log m(z) and its gradient with respect to z, traced alone
  on one latent and image."""
  marginal = vae.marginal_distribution()

  def log_density_gradient(z, x):
    with tf.GradientTape() as tape:
      tape.watch(z)
      log_density = vae.decoder(z).log_prob(x) + marginal.log_prob(z)
    return tape.gradient(log_density, z)

  return bench.step_flops(tf.function(log_density_gradient).get_concrete_function(
      tf.TensorSpec([1, vae.latent_size]), tf.TensorSpec([1, *IMAGE_SHAPE])).graph)


def test_ais_transition_flops_are_a_decoder_gradient_per_leapfrog_step_and_chain(vae):
  per_latent = _decoder_gradient_flops(vae)
  assert per_latent > 0
  # 3 chains of 2 images, 4 leapfrog steps: each step one forward and gradient per latent.
  assert bench.ais_transition_flops(vae, IMAGE_SHAPE, 3, 2, 4) == 4 * 3 * 2 * per_latent


def test_benchmark_family_times_ais(vae):
  settings = restore.run_settings(CONFIG)
  result = bench.benchmark_family(
      settings, data.static_mnist('test')[:64], steps=1, repeats=1, warmup=0, xla=False,
      eval_batches=1, num_samples=2, naive_repeats=0, peak_flops=1e11, iw_examples=2,
      iw_num_samples=1, iw_batch_size=2, ais_images=3, ais_chains=2, ais_transitions=2,
      ais_leapfrog_steps=3)
  assert (result['ais_chains'], result['ais_images'], result['ais_transitions'],
          result['ais_leapfrog_steps']) == (2, 3, 2, 3)
  assert result['ais_seconds'] > 0 and result['ais_evaluate_seconds'] > 0
  # The timed call's median over its 2 x 3 leapfrog steps, and over its 2 transitions of
  # 2 chains of 3 images.
  np.testing.assert_allclose(result['ais_leapfrog_seconds'], result['ais_seconds'] / 6,
                             rtol=1e-12)
  np.testing.assert_allclose(result['ais_seconds_per_image_chain_distribution'],
                             result['ais_seconds'] / 12, rtol=1e-12)
  np.testing.assert_allclose(result['ais_leapfrog_to_evaluate'],
                             result['ais_seconds'] / 6 / result['ais_evaluate_seconds'],
                             rtol=1e-12)
  assert result['ais_leapfrog_flops'] == 2 * 3 * _decoder_gradient_flops(vae)
  np.testing.assert_allclose(result['ais_flop_utilization'],
                             6 * result['ais_leapfrog_flops'] / result['ais_seconds'] / 1e11,
                             rtol=1e-12)
  np.testing.assert_allclose(result['ais_to_train_utilization'],
                             result['ais_flop_utilization'] / result['train_flop_utilization'],
                             rtol=1e-12)
  line = bench.ais_line('---', result)
  assert line.startswith('---\tAIS 2 chains x 3 images, 2 transitions x 3 leapfrog steps: ')
  assert f"{1. / result['ais_leapfrog_to_evaluate']:.0%} of the speed of the bare" in line
  with pytest.raises(errors.UserError, match='AIS is timed on 65 images, more than the 64'):
    bench.benchmark_family(settings, data.static_mnist('test')[:64], steps=1, repeats=1,
                           warmup=0, iw_examples=2, ais_images=65)


def test_suite_seconds_extrapolate_the_timed_calls(vae):
  arguments = dict(num_samples=(1, 3), likelihood_examples=20000, information_examples=300,
                   generative_examples=5, batch_size=2, active_unit_threshold=0.01)
  rate, compile_seconds = 50., 0.5
  suite = bench.information_suite_seconds(vae, data.static_mnist('test')[:200], arguments,
                                          rate, compile_seconds)
  # The likelihood examples are capped at the split's 10,000; 3 decoder passes each.
  assert suite['counts']['likelihood_examples'] == 10000
  assert suite['likelihood'] == dict(seconds=0.5 + 30000 / rate, decoder_passes=30000)
  # I_e is timed on one and two encoder chunks (100 examples each), the others on one and
  # two batches; every timed call took time.
  assert suite['mutual_information']['measured_examples'] == [100, 200]
  assert suite['active_units']['measured_examples'] == [2, 4]
  assert suite['generative']['measured_examples'] == [2, 4]
  for name in ('mutual_information', 'active_units', 'generative'):
    assert min(suite[name]['measured_seconds']) > 0
  # 300 examples are 3 chunks of 100 encoders against one chunk of latents (as 100 and 200
  # are 1 and 2): seconds = fixed + 3 per chunk, from the line through the two timings.
  first, second = suite['mutual_information']['measured_seconds']
  per_chunk = max(0., second - first)
  assert suite['mutual_information']['seconds'] == pytest.approx(
      max(0., first - per_chunk) + 3 * per_chunk, rel=1e-12)
  # Active units: 300 examples are 150 batches of 2.
  first, second = suite['active_units']['measured_seconds']
  per_batch = max(0., second - first)
  assert suite['active_units']['seconds'] == pytest.approx(
      max(0., first - per_batch) + 150 * per_batch, rel=1e-12)
  # E and G_3: K = 1 timed, the 2 further decoder passes of each of the 5 pairs at `rate`.
  assert suite['generative']['decoder_passes'] == 10
  assert suite['generative']['seconds'] >= 10 / rate
  assert suite['seconds'] == pytest.approx(sum(suite[name]['seconds'] for name in (
      'likelihood', 'mutual_information', 'active_units', 'generative')), rel=1e-12)
  assert 'total' in bench.suite_line('---', dict(suite=suite, iw_decoder_passes_per_second=rate))


def test_bad_counts_are_user_errors(vae):
  images = data.static_mnist('test')[:8]
  settings = restore.run_settings(CONFIG)
  with pytest.raises(errors.UserError, match='more than the 8 given'):
    bench.benchmark_family(settings, images, steps=1, repeats=1, warmup=0, iw_examples=9)
  with pytest.raises(errors.UserError, match='batch size >= 1, got 0'):
    bench.benchmark_family(settings, images, steps=1, repeats=1, warmup=0, iw_batch_size=0)
  arguments = dict(num_samples=(0, 10), likelihood_examples=10, information_examples=10,
                   generative_examples=10, batch_size=2, active_unit_threshold=0.01)
  with pytest.raises(errors.UserError, match='num_samples >= 1'):
    bench.information_suite_seconds(vae, images, arguments, 1., 0.)
  with pytest.raises(errors.UserError, match='takes 200 images'):
    bench.information_suite_seconds(vae, images, {**arguments, 'num_samples': 10}, 1., 0.)
