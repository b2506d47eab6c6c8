"""Tests of the training loop's loss (`train.loss`), of `rate_distortion_loss` and its
objective (`rate_distortion_loss.objective`), and of the optimizer (`train.optimizer`).

A loss defined here, bound from gin, trains a model without any change to the training code:
on a one-variable model its trajectory has a closed form, and on the smoke VAE a
distortion-only loss reproduces the built-in objective at beta = 0 exactly. An optimizer
defined here trains a point to its closed-form position.
"""

import os

import gin
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from brokenelbo import errors
from brokenelbo.training import losses
from brokenelbo.training import step as step_lib
from brokenelbo.training import trainer as trainer_lib
from brokenelbo.utils import cli


class _OneVariable(tf.Module):
  """A model with one scalar parameter `w`, initially 0."""

  def __init__(self):
    super().__init__()
    self.w = tf.Variable(0.)


def _distance_loss(model, x, seed, step, epoch):
  """(w - 3)^2, and `w` and the epoch as metrics."""
  del x, seed, step
  return (model.w - 3.)**2, dict(w=tf.identity(model.w), epoch=epoch)


def test_a_loss_defined_here_trains_with_a_closed_form_trajectory():
  # Gradients are normalised per variable, so a scalar's is sign(dL/dw) = -1 while w < 3,
  # and Adam with a constant gradient moves by the learning rate per step (to float32
  # rounding of its bias corrections).
  cli.parse_gin([], ['normalized_adam.learning_rate = 0.25',
                     'normalized_adam.decay_start_fraction = 1.'])
  trainer = step_lib.Trainer(_OneVariable, _distance_loss, tf.distribute.get_strategy(),
                                total_steps=100, steps_per_epoch=4, seed=0)
  assert trainer.metric_names == ('w', 'epoch')
  assert [v.name for v in trainer.variables] == ['Variable:0']
  iterator = iter(tf.data.Dataset.from_tensors(tf.zeros([2, 28, 28, 1])).repeat())
  means, good, bad_run, _ = trainer.train_steps(iterator, tf.constant(8))
  assert float(good) == 8 and int(bad_run) == 0
  # w after steps 0..7 is 0.25 k; the metrics are taken before each update.
  np.testing.assert_allclose(trainer.vae.w.numpy(), 2., atol=1e-4)
  loss, w, epoch = means.numpy()
  np.testing.assert_allclose(w, np.mean(0.25 * np.arange(8)), atol=1e-4)
  np.testing.assert_allclose(loss, np.mean((0.25 * np.arange(8) - 3.)**2), atol=1e-3)
  np.testing.assert_allclose(epoch, np.mean(np.arange(8) / 4), rtol=1e-6)


@tf.function  # AutoGraph converts it: the trainer traces losses as written, without it.
def _distance_loss_with_python_branch(model, x, seed, step, epoch):
  """`_distance_loss` while w < 0.9, then (w - 3)^2 / 4: a Python `if` on a tensor."""
  del x, seed, step
  if model.w < .9:
    loss = (model.w - 3.)**2
  else:
    loss = (model.w - 3.)**2 / 4.
  return loss, dict(w=tf.identity(model.w), epoch=epoch)


def test_a_loss_with_control_flow_on_tensors_trains_as_a_tf_function():
  # Normalised gradients: the branch changes the loss's value, not the steps' direction,
  # so w still moves 0.25 per step (as above, to float32 rounding: hence a threshold
  # between steps), and the mean loss follows the branches.
  cli.parse_gin([], ['normalized_adam.learning_rate = 0.25',
                     'normalized_adam.decay_start_fraction = 1.'])
  trainer = step_lib.Trainer(_OneVariable, _distance_loss_with_python_branch,
                                tf.distribute.get_strategy(), total_steps=100,
                                steps_per_epoch=4, seed=0)
  iterator = iter(tf.data.Dataset.from_tensors(tf.zeros([2, 28, 28, 1])).repeat())
  means, good, _, _ = trainer.train_steps(iterator, tf.constant(8))
  assert float(good) == 8
  w = 0.25 * np.arange(8)
  np.testing.assert_allclose(means.numpy()[0],
                             np.mean(np.where(w < .9, 1., .25) * (w - 3.)**2), atol=1e-3)


@gin.configurable
def distortion_only_loss(model, x, seed, step, epoch):
  """D alone, written here: the loss of the beta-VAE at beta = 0."""
  del step, epoch
  _, distortion = model.rate_distortion(x, seed)
  distortion = tf.reduce_mean(distortion)
  return distortion, dict(my_distortion=distortion)


def _scalars(model_dir, tag):
  values = []
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == tag:
          values.append((event.step, float(tf.make_ndarray(value.tensor))))
  return values


def test_a_gin_bound_loss_trains_the_vae_like_the_builtin_objective(tmp_path):
  smoke = ['configs/---.gin', 'configs/smoke.gin']
  cli.parse_gin(smoke, ['train.summary_images = 0', 'train.loss = @distortion_only_loss'])
  custom = trainer_lib.train(model_dir=str(tmp_path / 'custom'))
  gin.clear_config()
  cli.parse_gin(smoke, ['train.summary_images = 0', 'beta_schedule.beta = 0.'])
  builtin = trainer_lib.train(model_dir=str(tmp_path / 'builtin'))
  # The same seeds and the same gradients: the same parameters, the same evaluation.
  for split in ('train', 'test'):
    for key in ('rate', 'distortion', 'elbo'):
      np.testing.assert_allclose(custom[split][key], builtin[split][key], rtol=1e-6)
  # The loss's own metric is summarised, equal to the built-in run's distortion.
  mine = _scalars(str(tmp_path / 'custom'), 'train/my_distortion')
  theirs = _scalars(str(tmp_path / 'builtin'), 'train/distortion')
  assert [s for s, _ in mine] == [2, 4]
  np.testing.assert_allclose([v for _, v in mine], [v for _, v in theirs], rtol=1e-6)
  with open(tmp_path / 'custom' / 'config.gin') as f:
    assert 'train.loss = @distortion_only_loss' in f.read()


class _Fixed:
  """A model whose rate and distortion are [1, 3] and [10, 20] nats: batch means 2 and 15."""

  def rate_distortion(self, x, seed):
    del x, seed
    return tf.constant([1., 3.]), tf.constant([10., 20.])


def _rate_distortion_loss(epoch=0.):
  x = tf.zeros([2, 28, 28, 1])
  return losses.rate_distortion_loss(_Fixed(), x, tf.constant([0, 0]), tf.constant(0),
                                     tf.constant(epoch))


def test_the_objective_is_the_losss_own_binding():
  cli.parse_gin(['configs/base.gin'], [])
  assert gin.query_parameter('rate_distortion_loss.objective').selector == 'beta_vae'
  value, metrics = _rate_distortion_loss()
  np.testing.assert_allclose(value, 15. + 2.)  # D + beta R at beta = 1.
  gin.clear_config()
  cli.parse_gin([], ['rate_distortion_loss.objective = @target_rate',
                     'target_rate.target = 5.'])
  value, metrics = _rate_distortion_loss()
  # D + |sigma - R| with batch means R = 2, D = 15.
  np.testing.assert_allclose(value, 15. + 3.)
  np.testing.assert_allclose(metrics['elbo'], -17.)
  # The old name is gone: a config that still uses it is refused.
  gin.clear_config()
  with pytest.raises(errors.UserError, match='objective'):
    cli.parse_gin([], ['train.objective = @beta_vae'])


def test_beta_is_among_the_losss_metrics_and_its_metrics_at():
  # beta anneals from 0.5 to 2 over 4 epochs: 1.25 at epoch 2, in the step's metrics and
  # in `metrics_at`, which the evaluation records carry.
  cli.parse_gin([], ['beta_schedule.beta = 2.', 'beta_schedule.start_beta = 0.5',
                     'beta_schedule.anneal_epochs = 4.'])
  value, metrics = _rate_distortion_loss(epoch=2.)
  np.testing.assert_allclose(metrics['beta'], 1.25)
  np.testing.assert_allclose(value, 15. + 1.25 * 2.)
  assert losses.metrics_at(losses.rate_distortion_loss, 2.) == {'beta': 1.25}
  assert losses.metrics_at(losses.rate_distortion_loss, 9.) == {'beta': 2.}
  assert losses.metrics_at(_distance_loss, 2.) == {}  # A loss without schedules.
  gin.clear_config()
  # A value that bypassed `cli.parse_gin`'s check is caught when the schedule is called.
  gin.bind_parameter('beta_schedule.beta', -1.)
  with pytest.raises(errors.UserError, match=r'beta_schedule\.beta = -1\.0: must be'):
    losses.metrics_at(losses.rate_distortion_loss, 0.)


@gin.configurable
def plain_sgd(total_steps, learning_rate=gin.REQUIRED):
  """Plain SGD at a constant rate: an optimizer defined here, for `train.optimizer`."""
  del total_steps
  return tf_keras.optimizers.SGD(learning_rate)


class _Centre(tf.Module):
  """A point `w` in R^3, initially 0, fitted to vectors: R = 0, D = ||x - w||^2."""

  def __init__(self):
    super().__init__()
    self.w = tf.Variable(tf.zeros([3]))

  def rate_distortion(self, x, seed):
    del seed
    return tf.zeros([tf.shape(x)[0]]), tf.reduce_sum((x - self.w)**2, axis=-1)


_VECTORS = np.random.RandomState(3).randn(8, 3).astype(np.float32)


def _vectors(split):
  del split
  return _VECTORS


def test_vector_data_and_plain_adam_train_through_train(tmp_path):
  # Non-image examples [N, 3], full batches, no gradient normalisation: the run must follow
  # plain Adam on mean D exactly, and its evaluation must be D at the final w.
  cli.parse_gin([], ['normalized_adam.learning_rate = 0.1',
                     'normalized_adam.decay_start_fraction = 1.'])
  results = trainer_lib.train(
      model_dir=str(tmp_path / 'run'), model=_Centre, loss=losses.rate_distortion_loss,
      dataset=_vectors, batch_size=8, epochs=10, eval_every_epochs=10, log_every_steps=10,
      summary_images=0, normalize_gradients=False)
  w = tf.Variable(tf.zeros([3]))
  adam = tf_keras.optimizers.Adam(0.1)
  for _ in range(10):
    with tf.GradientTape() as tape:
      loss = tf.reduce_mean(tf.reduce_sum((_VECTORS - w)**2, axis=-1))
    adam.apply_gradients([(tape.gradient(loss, w), w)])
  expected = np.mean(np.sum((_VECTORS - w.numpy())**2, axis=-1))
  np.testing.assert_allclose(results['test']['distortion'], expected, rtol=1e-5)
  # Normalised gradients take another path from the same start.
  gin.clear_config()
  cli.parse_gin([], ['normalized_adam.learning_rate = 0.1',
                     'normalized_adam.decay_start_fraction = 1.'])
  normalized = trainer_lib.train(
      model_dir=str(tmp_path / 'normalized'), model=_Centre, dataset=_vectors, batch_size=8,
      epochs=10, eval_every_epochs=10, log_every_steps=10, summary_images=0)
  assert abs(normalized['test']['distortion'] - expected) > 1e-3  # 4e-3 measured.


def test_an_optimizer_defined_here_trains_through_train(tmp_path):
  # Full-batch SGD on mean D = mean ||x - w||^2 from w = 0: w_k = (1 - (1 - 2 lr)^k) mean(x),
  # and the final evaluation is D at w_10.
  cli.parse_gin([], ['train.optimizer = @plain_sgd', 'plain_sgd.learning_rate = 0.1'])
  results = trainer_lib.train(
      model_dir=str(tmp_path / 'run'), model=_Centre, dataset=_vectors, batch_size=8,
      epochs=10, eval_every_epochs=10, log_every_steps=10, summary_images=0,
      normalize_gradients=False)
  w = (1. - (1. - 2 * 0.1)**10) * _VECTORS.astype(np.float64).mean(axis=0)
  expected = np.mean(np.sum((_VECTORS - w)**2, axis=-1))
  np.testing.assert_allclose(results['test']['distortion'], expected, rtol=1e-5)
