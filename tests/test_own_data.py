"""Your own data (`brokenelbo.data.images`): files and TFDS data sets of any image size,
their splits and binarizations (dynamic ones in `pipeline.train_dataset`), the networks
that fit them, and bad data refused through the real command line.

The command-line cases run in one process, which calls `brokenelbo.train`'s `main` once per
case as `python -m brokenelbo.train` would: a short run on 32x36 images under dynamic
binarization, then each bad input, which must exit with status 2 and one line naming the
file and what is wrong, before anything is written. The TFDS data set of the tests is built
here, locally, by a `GeneratorBasedBuilder`, and read by name from its data folder.
"""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.data import images
from brokenelbo.data import mnist
from brokenelbo.data import omniglot
from brokenelbo.data import pipeline
from brokenelbo.models import decoders
from brokenelbo.models import encoders
from brokenelbo.models import marginals
from brokenelbo.models.pixelcnn import network as pixelcnn
from brokenelbo.training import summaries
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY_TFDS = 'tiny_own_images'


@pytest.fixture(autouse=True)
def _fresh_cache():
  images.clear_cache()
  yield
  images.clear_cache()


def _tiny_tfds_builder(data_dir):
  """A 32x28 grey-level TFDS data set, built locally (no download): 40 'train' and 10
  'test' images, image i of a split uniform at level (29 i + split) mod 256."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  class TinyOwnImages(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    name = TINY_TFDS
    VERSION = tfds.core.Version('1.0.0')

    def _info(self):
      return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
          {'image': tfds.features.Image(shape=(32, 28, 1)), 'label': tf.int64}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples(0, 40), 'test': self._generate_examples(1, 10)}

    def _generate_examples(self, offset, num):
      for i in range(num):
        level = (29 * i + offset) % 256
        yield i, {'image': np.full((32, 28, 1), level, np.uint8), 'label': i}

  builder = TinyOwnImages(data_dir=str(data_dir))
  builder.download_and_prepare()
  return builder


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  pytest.importorskip('importlib_resources')  # tensorflow-datasets needs it to build
  data_dir = tmp_path_factory.mktemp('tfds')
  _tiny_tfds_builder(data_dir)
  return str(data_dir)


def _levels(count, offset):
  return (29 * np.arange(count) + offset) % 256


def test_a_file_split_by_the_rule(tmp_path):
  rng = np.random.RandomState(3)
  grey = rng.random_sample((50, 6, 7)).astype(np.float32)
  np.save(tmp_path / 'grey.npy', grey)
  data = images.ImageFile(str(tmp_path / 'grey.npy'), split_seed=4)
  order = np.random.RandomState(4).permutation(50)
  expected = {'test': np.sort(order[:5]), 'validation': np.sort(order[5:10]),
              'train': np.sort(order[10:])}
  for split, index in expected.items():
    np.testing.assert_array_equal(data.grey_levels(split), grey[index][..., None])
    np.testing.assert_array_equal(data(split), (grey[index] > 0.5)[..., None].astype(np.uint8))
  assert data('train').dtype == np.uint8 and not data('train').flags.writeable
  with pytest.raises(mnist.DataError, match="unknown split 'valid'"):
    data('valid')
  # A split left empty is an error when, and only when, it is asked for.
  data = images.ImageFile(str(tmp_path / 'grey.npy'), validation_fraction=0.)
  assert len(data('train')) == 45
  with pytest.raises(mnist.DataError, match=r'grey.npy: the validation split of its 50 images '
                     r'is empty \(ImageFile.test_fraction = 0.1, ImageFile.validation_fraction'
                     r' = 0.0\)$'):
    data('validation')


def test_a_file_split_by_its_arrays(tmp_path):
  train = np.arange(40 * 4 * 5).reshape(40, 4, 5, 1) % 256
  test = np.ones((3, 4, 5), bool)
  np.savez(tmp_path / 'two.npz', train=train.astype(np.uint8), test=test, labels=np.arange(3))
  data = images.ImageFile(str(tmp_path / 'two.npz'), validation_fraction=0.25)
  held_out = np.sort(np.random.RandomState(0).permutation(40)[:10])
  np.testing.assert_array_equal(data.grey_levels('validation'),
                                train[held_out].astype(np.float32) / np.float32(255))
  assert len(data('train')) == 30 and len(data('validation')) == 10
  np.testing.assert_array_equal(data('test'), np.ones((3, 4, 5, 1), np.uint8))
  np.savez(tmp_path / 'three.npz', train=test, validation=test[:1], test=test[:2])
  data = images.ImageFile(str(tmp_path / 'three.npz'))
  assert [len(data(s)) for s in images.SPLITS] == [3, 1, 2]


def test_grey_levels_of_each_dtype():
  as_bool = np.array([[[True, False]]])
  binary = np.array([[[1, 0]]], np.uint8)
  bytes_ = np.array([[[255, 0, 128]]], np.uint8)
  np.testing.assert_array_equal(images.grey_levels(as_bool, 'x')[..., 0], [[[1., 0.]]])
  np.testing.assert_array_equal(images.grey_levels(binary, 'x')[..., 0], [[[1., 0.]]])
  np.testing.assert_array_equal(images.grey_levels(bytes_, 'x')[..., 0],
                                [[[1., 0., np.float32(128) / np.float32(255)]]])
  rgb = images.grey_levels(np.zeros((2, 3, 4, 3), np.float64), 'x')
  assert rgb.dtype == np.float32 and rgb.shape == (2, 3, 4, 3)


def test_threshold_and_bernoulli_binarization(tmp_path):
  grey = np.tile(np.linspace(0., 1., 11, dtype=np.float32), (200, 10, 1))  # [200, 10, 11]
  np.savez(tmp_path / 'ramp.npz', train=grey, test=grey[:100])
  threshold = images.ImageFile(str(tmp_path / 'ramp.npz'), threshold=0.35)
  # Levels 0.4, ..., 1.0 exceed 0.35: 7 of the 11 columns of every row.
  assert int(threshold('test').sum()) == 100 * 10 * 7
  drawn = images.ImageFile(str(tmp_path / 'ramp.npz'), binarization='bernoulli', seed=5)
  test = drawn('test')
  assert drawn('test') is test  # One fixed draw.
  uniforms = np.random.RandomState([5, 2]).random_sample((100, 10, 11, 1))
  np.testing.assert_array_equal(test, (uniforms < grey[:100, ..., None]).astype(np.uint8))
  # The mean of each column is its grey level (1,000 draws each: 4 standard deviations).
  np.testing.assert_allclose(test.mean(axis=(0, 1, 3)), np.linspace(0, 1, 11), atol=0.064)
  assert test[..., 0, :].max() == 0 and test[..., -1, :].min() == 1
  other = images.ImageFile(str(tmp_path / 'ramp.npz'), binarization='bernoulli', seed=6)
  assert not np.array_equal(other('test'), test)
  dynamic = images.ImageFile(str(tmp_path / 'ramp.npz'), binarization='dynamic', seed=5)
  np.testing.assert_array_equal(dynamic('test'), test)  # Evaluation: the fixed draw.
  train = dynamic.training_images()
  assert isinstance(train, pipeline.DynamicBinarization)
  np.testing.assert_array_equal(train[:3].probabilities, dynamic.grey_levels('train')[:3])
  assert threshold.training_images() is threshold('train')


def _stream(images_, batch_size, seed, count, start_step=0):
  dataset = pipeline.train_dataset(images_, batch_size, seed, start_step)
  return [batch.numpy() for batch in dataset.take(count)]


def test_dynamic_binarization_draws_afresh_every_epoch():
  # 8 images of 4x5 pixels: columns at grey levels 0, 0.25, 0.5, 0.75, 1. One batch an
  # epoch, so step k is epoch k.
  grey = np.tile(np.array([0., .25, .5, .75, 1.], np.float32), (8, 4, 1))[..., None]
  source = pipeline.DynamicBinarization(grey)
  batches = _stream(source, 8, seed=3, count=200)
  assert all(set(np.unique(b).tolist()) <= {0., 1.} for b in batches)
  draws = np.stack(batches)  # [200 epochs, 8, 4, 5, 1]
  # Each column's mean is its grey level: 6,400 draws each, 4 standard deviations.
  np.testing.assert_allclose(draws.mean(axis=(0, 1, 2, 4)), [0., .25, .5, .75, 1.],
                             atol=4 * np.sqrt(.25 / 6400))
  assert draws[..., 0, :].max() == 0. and draws[..., 4, :].min() == 1.
  # Other draws in other epochs; the same stream for the same seed, resumed or not.
  assert not np.array_equal(batches[0], batches[1])
  np.testing.assert_array_equal(np.stack(_stream(source, 8, seed=3, count=5)), draws[:5])
  np.testing.assert_array_equal(_stream(source, 8, seed=3, count=2, start_step=3)[0],
                                batches[3])
  assert not np.array_equal(np.stack(_stream(source, 8, seed=4, count=5)), draws[:5])
  # An array is batched as it is.
  fixed = _stream((grey > .5).astype(np.uint8), 8, seed=3, count=2)
  np.testing.assert_array_equal(fixed[0].sum(), 8 * 4 * 2)


def test_tfds_data_set_by_name(tfds_dir):
  data = images.TFDSImages(TINY_TFDS, data_dir=tfds_dir, validation_fraction=0.25)
  # TFDS stores the examples in an order of its own: compare the sets of levels.
  train, validation = data.grey_levels('train'), data.grey_levels('validation')
  assert (len(train), len(validation), len(data('test'))) == (30, 10, 10)
  levels = np.sort(np.concatenate([train, validation])[:, 0, 0, 0] * 255).round()
  np.testing.assert_array_equal(levels, np.sort(_levels(40, 0)))
  assert set(np.unique(data('test')[:, 0, 0, 0]).tolist()) == {0, 1}
  np.testing.assert_array_equal(np.sort(data('test')[:, 0, 0, 0]),
                                np.sort((_levels(10, 1) > 127.5).astype(np.uint8)))
  assert data('train').shape[1:] == (32, 28, 1)
  sliced = images.TFDSImages(TINY_TFDS, data_dir=tfds_dir, train_split='train[:20]',
                             validation_split='train[20:]')
  assert (len(sliced('train')), len(sliced('validation'))) == (20, 20)


def test_networks_adapt_to_the_image_size_or_say_which_binding():
  layers = ((4, 7, 1, 'valid'), (4, 5, 1, 'same'), (4, 5, 2, 'same'), (4, 5, 2, 'same'))
  assert decoders.fit_deconv_layers(layers, 28, 28) == (layers, 28)
  assert decoders.fit_deconv_layers(layers, 20, 24) == (((4, 6, 1, 'valid'),) + layers[1:], 24)
  z = tf.zeros([2, 3])
  decoder = decoders.DeconvDecoder(layers, image_shape=(20, 24, 3))
  assert decoder(z).event_shape == (20, 24, 3) and decoder(z).sample(seed=(1, 2)).shape == (
      2, 20, 24, 3)
  conv = ((4, 5, 1, 'same'), (4, 5, 2, 'same'), (4, 5, 2, 'same'), (8, 7, 1, 'valid'))
  encoder = encoders.ConvEncoder(latent_size=3, conv_layers=conv)
  encoder.check_image_shape((32, 36, 3))
  assert encoder(tf.zeros([2, 32, 36, 3])).event_shape == (3,)
  with pytest.raises(errors.UserError, match=r"^ConvEncoder.conv_layers do not fit 20x24 "
                     r"images: layer 4 \(8, 7, 1, 'valid'\) gets 5x6 maps"):
    encoder.check_image_shape((20, 24, 1))
  with pytest.raises(errors.UserError, match=r'^the data are 32x36x3 images but '
                     r'DeconvDecoder.image_shape is \(20, 24, 3\): bind'):
    decoder.check_image_shape((32, 36, 3))
  small = lambda: pixelcnn.PixelCNN(filters=4, layers_per_block=1, num_resolutions=2)
  pixel = decoders.PixelCNNDecoder(image_shape=(8, 12, 1), network=small)
  assert pixel(z).log_prob(tf.zeros([2, 8, 12, 1])).shape == (2,)
  with pytest.raises(errors.UserError, match='multiples of 2; bind PixelCNN.num_resolutions'):
    decoders.PixelCNNDecoder(image_shape=(7, 12, 1), network=small)
  with pytest.raises(errors.UserError, match='one channel'):
    decoders.PixelCNNDecoder(image_shape=(8, 12, 3), network=small)
  prior = marginals.VampPrior(latent_size=3, num_pseudo_inputs=2, image_shape=(32, 36, 3))
  assert prior(encoder).event_shape == (3,)
  with pytest.raises(errors.UserError, match=r'VampPrior.image_shape = \(28, 28, 1\)'):
    prior.check_image_shape((28, 28, 1))


def test_configs_bind_the_networks_to_the_data(tmp_path, tfds_dir):
  np.save(tmp_path / 'x.npy', np.zeros((20, 32, 36), bool))
  cli.parse_gin(['configs/-+v.gin', 'configs/images.gin', 'configs/smoke.gin'],
                [f"ImageFile.path = '{tmp_path / 'x.npy'}'"])
  assert images.example_shape(images.ImageFile()) == (32, 36, 1)
  for name in ('DeconvDecoder', 'PixelCNNDecoder', 'VampPrior'):
    assert gin.query_parameter(f'{name}.image_shape').selector == 'example_shape'
  gin.clear_config()
  cli.parse_gin(['configs/---.gin', 'configs/tfds_images.gin'],
                [f"TFDSImages.name = '{TINY_TFDS}'", f"TFDSImages.data_dir = '{tfds_dir}'"])
  assert images.example_shape(images.TFDSImages()) == (32, 28, 1)
  # The record of a run states the binarization.
  assert summaries.run_hparams('---', images.TFDSImages(), 1., 16, 0)['binarization'] == (
      'threshold')
  assert summaries.run_hparams('---', mnist.static_mnist, 1., 16, 0)['binarization'] == 'given'
  assert summaries.run_hparams('---', omniglot.omniglot, 1., 16, 0)['binarization'] == (
      'threshold')


def _bad_files(root):
  """`{case: (bindings, fragments of its one line)}`; the files are in `root`."""
  rng = np.random.RandomState(0)
  grey = rng.random_sample((40, 28, 28)).astype(np.float32)
  files = dict(
      flat=grey.reshape(40, -1), int64=(grey > .5).astype(np.int64), above_one=grey + .5,
      nan=np.where(np.arange(40)[:, None, None] == 7, np.nan, grey), small=grey[:, :20, :24],
      wide=np.zeros((40, 32, 36), bool))
  for name, array in files.items():
    np.save(os.path.join(root, f'{name}.npy'), array)
  np.savez(os.path.join(root, 'empty.npz'), train=grey, validation=grey[:0], test=grey)
  with open(os.path.join(root, 'garbled.npz'), 'wb') as f:
    f.write(b'PK\x03\x04 not really a zip')
  damaged = os.path.join(root, 'omniglot')
  os.makedirs(damaged)
  for name in omniglot.OMNIGLOT_NPZ.values():
    with open(os.path.join(damaged, name), 'wb') as f:
      f.write(b'not the archive')
  path = lambda name: os.path.join(root, name)
  own = ['--gin_file=configs/images.gin']
  return {
      'missing': (own, ["ImageFile.path = 'nope.npz'"], ['nope.npz: no such file']),
      'flat': (own, [f"ImageFile.path = '{path('flat.npy')}'"],
               [path('flat.npy'), 'has shape (40, 784); expected images']),
      'int64': (own, [f"ImageFile.path = '{path('int64.npy')}'"],
                [path('int64.npy'), 'holds int64 values']),
      'above_one': (own, [f"ImageFile.path = '{path('above_one.npy')}'"],
                    [path('above_one.npy'), 'outside [0, 1]']),
      'nan': (own, [f"ImageFile.path = '{path('nan.npy')}'"],
              [path('nan.npy'), 'holds 784 NaN and 0 infinite values']),
      'empty_split': (own, [f"ImageFile.path = '{path('empty.npz')}'"],
                      [path('empty.npz') + "['validation'] is empty"]),
      'empty_by_rule': (own, [f"ImageFile.path = '{path('wide.npy')}'",
                              'ImageFile.test_fraction = 0.'],
                        [path('wide.npy'), 'the test split of its 40 images is empty',
                         'ImageFile.test_fraction = 0.0']),
      'garbled': (own, [f"ImageFile.path = '{path('garbled.npz')}'"],
                  [path('garbled.npz'), 'is unreadable']),
      'encoder_too_big': (own, [f"ImageFile.path = '{path('small.npy')}'"],
                          ['ConvEncoder.conv_layers do not fit 20x24 images']),
      'decoder_not_bound': ([], ['train.dataset = @ImageFile()',
                                 f"ImageFile.path = '{path('wide.npy')}'"],
                            ['the data are 32x36x1 images but DeconvDecoder.image_shape is '
                             '(28, 28, 1)']),
      'unknown_tfds': (['--gin_file=configs/tfds_images.gin'],
                       ["TFDSImages.name = 'no_such_images'", f"TFDSImages.data_dir = '{root}'"],
                       ["TFDS has no data set 'no_such_images'"]),
      'damaged_omniglot': (['--gin_file=configs/omniglot.gin'],
                           [f"omniglot.npz_dir = '{damaged}'"],
                           [os.path.join(damaged, 'images_background.npz'), 'SHA-256',
                            'is not the Omniglot images_background.npz']),
  }


def test_own_data_through_the_command_line(tmp_path, in_one_process):
  # One run (about 10 s here; TFDSImages reads the same way, `test_tfds_data_set_by_name`),
  # then every bad input, in the same process.
  grey = np.random.RandomState(1).random_sample((120, 32, 36)).astype(np.float32)
  np.save(tmp_path / 'grey.npy', grey)
  smoke = ['--gin_file=configs/---.gin', '--gin_file=configs/smoke.gin']
  run = ['--gin_file=configs/--v.gin', '--gin_file=configs/images.gin', *smoke[1:],
         f"--gin_bindings=ImageFile.path = '{tmp_path / 'grey.npy'}'",
         "--gin_bindings=ImageFile.binarization = 'dynamic'",
         f"--model_dir={tmp_path / 'run'}"]
  bad = _bad_files(str(tmp_path))
  cases = [run] + [[*smoke[:1], *files, *smoke[1:], *[f'--gin_bindings={b}' for b in bindings],
                    f'--model_dir={tmp_path / name}']
                   for name, (files, bindings, _) in bad.items()]
  outcomes, stdout = in_one_process('train', cases)
  assert len(outcomes) == len(cases), stdout[-3000:]

  status, lines = outcomes[0]
  assert status == 0, lines[-20:]
  record = json.loads((tmp_path / 'run' / 'run.json').read_text())
  assert record['hparams']['binarization'] == 'dynamic'
  assert record['hparams']['dataset'] == f"ImageFile('{tmp_path / 'grey.npy'}')"
  assert "ImageFile.binarization = 'dynamic'" in (tmp_path / 'run' / 'config.gin').read_text()
  # 12 test images (10%); 32x36 random grey levels, so about 1,152 log 2 nats of distortion.
  assert record['metrics']['test']['num_examples'] == 12
  assert 700 < record['metrics']['test']['distortion'] < 900, record['metrics']
  print('run', record['hparams']['family'], record['hparams']['dataset'],
        {s: round(m['elbo'], 3) for s, m in record['metrics'].items()})
  for (name, (_, _, fragments)), (status, lines) in zip(bad.items(), outcomes[1:]):
    assert status == errors.EXIT_USER_ERROR and len(lines) == 1, (name, status, lines)
    assert lines[0].startswith('error: ') and all(f in lines[0] for f in fragments), (
        name, lines[0])
    assert not (tmp_path / name).exists(), name
    print(name, '|', lines[0])
