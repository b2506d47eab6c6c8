"""End-to-end tests of `training.train`.

Every one of the 12 families is built as `train` builds it and measured once; six of them,
which hold every pair of letters of any two positions, train for one smoke epoch (4 steps)
in-process and leave a `run.json` whose metrics are the final records of its
`metrics.jsonl`; an attempt that does not finish leaves no `run.json`. The command line's
runs, interruptions and user errors are `test_reliability.py`'s.
"""

import json
import math
import os
import shutil
import tempfile

from absl.testing import parameterized
import gin
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.plugins.hparams import metadata as hparams_metadata
import tensorflow as tf

from brokenelbo.models import families
from brokenelbo.training import loop
from brokenelbo.training import run_dir
from brokenelbo.training import run_record
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli

# One of the longest modules: it starts before the short ones (conftest.py).
pytestmark = pytest.mark.first

FAMILIES = families.FAMILIES
# The families trained end to end: every pair of letters of any two positions (encoder and
# decoder, encoder and marginal, decoder and marginal) is among them; every family of the
# 12 is built and measured in `test_every_family_builds_and_measures`.
TRAINED_FAMILIES = ('---', '++-', '+-+', '-++', '--v', '++v')
IMAGE_FAMILIES = ('---', '++v')
SPLITS = ('train', 'test')

# What the operative config must say for each letter of a family (encoder, decoder,
# marginal): the family file really selected the parts, and smoke.gin really shrank them.
OPERATIVE_LINES = (
    {'-': ['ConvEncoder.flow = None'],
     '+': ['ConvEncoder.flow = @iaf/ShiftOnlyFlow', 'iaf/ShiftOnlyFlow.inverse = True',
           'ShiftOnlyFlow.hidden_units = (32,)']},
    {'-': ['VAE.decoder = @DeconvDecoder'],
     '+': ['VAE.decoder = @PixelCNNDecoder', 'PixelCNN.filters = 8',
           'PixelCNN.layers_per_block = 1']},
    {'-': ['VAE.marginal = @StandardNormal'],
     '+': ['VAE.marginal = @FlowMarginal', 'FlowMarginal.flow = @ShiftOnlyFlow',
           'ShiftOnlyFlow.hidden_units = (32,)'],
     'v': ['VAE.marginal = @VampPrior', 'VampPrior.num_pseudo_inputs = 5']},
)

def _read_metrics(model_dir):
  with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _check_run_record(model_dir, final_step=4, steps_per_epoch=4):
  """`run.json` holds the final step and epoch, the digest of `config.gin`, and, per split,
  every value of the split's final record in `metrics.jsonl` but its step, epoch, split."""
  record = run_record.read_run_record(model_dir)
  assert record is not None, os.listdir(model_dir)
  assert (record['step'], record['epoch']) == (final_step, final_step / steps_per_epoch)
  with open(os.path.join(model_dir, 'config.gin')) as f:
    assert record['config_sha256'] == run_record.config_digest(f.read())
  final = {r['split']: r for r in _read_metrics(model_dir)}
  assert record['metrics'] == {split: {k: v for k, v in r.items()
                                       if k not in ('step', 'epoch', 'split')}
                               for split, r in final.items()}
  assert all(r['step'] == final_step for r in final.values())
  assert run_record.is_finished(model_dir)


def _family_name(family):
  return family.replace('-', 'm').replace('+', 'p')


class _TempDirTestCase(tf.test.TestCase):
  """A fresh directory per test (absl's `create_tempdir` needs parsed flags under pytest)."""

  def _new_dir(self):
    path = tempfile.mkdtemp(prefix='brokenelbo_test_')
    self.addCleanup(shutil.rmtree, path, ignore_errors=True)
    return path


class TrainTest(_TempDirTestCase, parameterized.TestCase):

  def setUp(self):
    super().setUp()
    gin.clear_config()

  def tearDown(self):
    gin.clear_config()
    super().tearDown()

  def _check_metrics(self, records, expected_step=4):
    self.assertEqual([r['split'] for r in records], list(SPLITS))
    for r in records:
      self.assertEqual(expected_step, r['step'])  # smoke.gin: 64 examples / 16 = 4 steps.
      self.assertEqual(1., r['epoch'])
      self.assertEqual(1., r['beta'])
      self.assertEqual(50, r['num_examples'])  # train.max_eval_examples.
      for key in ('rate', 'distortion', 'elbo'):
        self.assertTrue(math.isfinite(r[key]), (key, r))
      self.assertAllClose(-(r['rate'] + r['distortion']), r['elbo'], rtol=1e-4, atol=0.)
      # A Bernoulli negative log-likelihood of 784 pixels after 4 steps: near the
      # 784 log 2 = 543 nats of a fair coin per pixel.
      self.assertBetween(r['distortion'], 100., 1000.)

  @parameterized.named_parameters((_family_name(f), f) for f in FAMILIES)
  def test_every_family_builds_and_measures(self, family):
    # The parts the family file selects, built as `train` builds them, and one eager
    # measurement of R and D on two images.
    cli.parse_gin([f'configs/{family}.gin', 'configs/smoke.gin'], [])
    model = cli.configured_arguments(training.train)['model']()
    x = tf.constant(np.random.default_rng(0).random((2, 28, 28, 1)) < 0.3, tf.float32)
    rate, distortion = model.rate_distortion(x, tf.constant([0, 1], tf.int32))
    self.assertEqual([2, 2], [rate.shape[0], distortion.shape[0]])
    self.assertTrue(np.all(np.isfinite(rate)) and np.all(rate > -1.))  # R >= 0 in mean.
    # An untrained Bernoulli decoder: near 784 log 2 = 543 nats.
    self.assertTrue(np.all((distortion > 300.) & (distortion < 1000.)), distortion)
    operative = gin.operative_config_str()
    for letter, lines in zip(family, OPERATIVE_LINES):
      for line in lines[letter]:
        self.assertIn(line, operative, msg=f'{family}: {line}')

  @parameterized.named_parameters((_family_name(f), f) for f in TRAINED_FAMILIES)
  def test_family_trains_under_smoke_config(self, family):
    # TensorBoard images (a third of a smoke run's time with a PixelCNN) for one family of
    # each decoder, checked below.
    images = family in IMAGE_FAMILIES
    cli.parse_gin([f'configs/{family}.gin', 'configs/smoke.gin'],
                  [] if images else ['train.summary_images = 0'])
    config_str = gin.config_str()
    model_dir = os.path.join(self._new_dir(), 'run')
    results = training.train(model_dir=model_dir)

    records = _read_metrics(model_dir)
    self._check_metrics(records)
    for r in records:
      for key in ('rate', 'distortion', 'elbo'):
        self.assertAllClose(results[r['split']][key], r[key], rtol=1e-6, atol=0.)
    _check_run_record(model_dir)
    self.assertEqual({'beta', 'num_examples', 'rate', 'distortion', 'elbo'},
                     set(run_record.read_run_record(model_dir)['metrics']['test']))

    with open(os.path.join(model_dir, 'config.gin')) as f:
      self.assertEqual(config_str, f.read())
    with open(os.path.join(model_dir, 'operative_config.gin')) as f:
      operative = f.read()
    self.assertIn('train.max_train_examples = 64', operative)
    for letter, lines in zip(family, OPERATIVE_LINES):
      for line in lines[letter]:
        self.assertIn(line, operative, msg=f'{family}: {line}')
    self.assertTrue(tf.io.gfile.exists(os.path.join(model_dir, 'ckpt-4.index')))
    # The run's HParams session, as TensorBoard's event loading reads it: the family's
    # letters come from the model that was built, not from the name of a file.
    hparams = _hparams_session(model_dir)
    self.assertEqual((family, family[0], family[1], family[2], 'static_mnist'),
                     tuple(hparams[k].string_value for k in (
                         'family', 'encoder', 'decoder', 'marginal', 'dataset')))
    self.assertEqual((1., 0., 0., 1., 16.), tuple(hparams[k].number_value for k in (
        'beta', 'anneal_epochs', 'seed', 'epochs', 'batch_size')))
    if images:  # smoke.gin: 2 images; the input beside its reconstruction, and samples.
      # TF2 image summaries are tensors: width, height, then one PNG per image.
      accumulator = event_accumulator.EventAccumulator(
          model_dir, size_guidance={event_accumulator.TENSORS: 0})
      accumulator.Reload()
      for tag, width in (('images/input_then_reconstruction', 56), ('images/samples', 28)):
        events = accumulator.Tensors(tag)
        self.assertEqual([4], [e.step for e in events], tag)
        value = tf.make_ndarray(events[0].tensor_proto)
        self.assertEqual([str(width).encode(), b'28'], list(value[:2]), tag)
        self.assertLen(value, 4, tag)
        for png in value[2:]:
          self.assertEqual((28, width, 1), tuple(tf.io.decode_png(png).shape), tag)


def _hparams_session(model_dir):
  """The hyper-parameters of the run's HParams session-start summary."""
  accumulator = event_accumulator.EventAccumulator(model_dir)
  accumulator.Reload()
  content = accumulator.PluginTagToContent(hparams_metadata.PLUGIN_NAME)
  data = hparams_metadata.parse_session_start_info_plugin_data(
      content[hparams_metadata.SESSION_START_INFO_TAG])
  return data.hparams


def test_an_attempt_that_does_not_finish_leaves_no_run_record(tmp_path, monkeypatch):
  # A finished run has its record; an attempt that starts again removes it before it
  # trains, so that one that then fails (here: a crash of the loop) leaves none.
  model_dir = str(tmp_path / 'run')
  bindings = ['train.summary_images = 0', 'train.epochs = 0.5', 'train.eval_every_epochs = 0.5']
  gin.clear_config()
  try:
    cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], bindings)
    training.train(model_dir=model_dir)
    _check_run_record(model_dir, final_step=2)

    def crash(*args, **kwargs):
      del args, kwargs
      raise RuntimeError('killed')

    monkeypatch.setattr(loop, 'train_and_evaluate', crash)
    with pytest.raises(RuntimeError, match='killed'):
      training.train(model_dir=model_dir)
  finally:
    gin.clear_config()
  assert run_record.read_run_record(model_dir) is None
  assert not run_record.is_finished(model_dir)
  # `--overwrite` removes a run's records with its other files.
  (tmp_path / 'run' / run_record.RUN_RECORD).write_text('{}')
  (tmp_path / 'run' / run_record.EVALUATION_RECORD).write_text('{}')
  (tmp_path / 'run' / 'notes.txt').write_text('mine')
  run_dir.check_model_dir(model_dir, 'train.seed = 1\n', overwrite=True)
  assert sorted(os.listdir(model_dir)) == ['config.gin', 'notes.txt']


if __name__ == '__main__':
  tf.test.main()
