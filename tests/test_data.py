"""Tests for `brokenelbo.data`: the embedded binarized MNIST, its checks, the pipeline."""

import hashlib
import os
import struct
import zipfile

import gin
import numpy as np
import pytest
import scipy.io
import tensorflow as tf

from brokenelbo import data
from brokenelbo import errors
from brokenelbo.data import mnist
from brokenelbo.data import subsets

SHARED_MNIST = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            '..', 'shared', 'data', 'binarized_mnist')

# Counted in `../shared/data/binarized_mnist/*.mat`: (images, pixels equal to 1 in the
# split, pixels equal to 1 in its first image, flat index of that image's first 1).
EXPECTED = {
    'train': (50000, 5118041, 123, 64),
    'validation': (10000, 1028036, 90, 152),
    'test': (10000, 1038896, 147, 125),
}


@pytest.mark.parametrize('split', data.SPLITS)
def test_split_shape_count_and_values(split):
  num_images, num_ones, first_ones, first_index = EXPECTED[split]
  images = data.static_mnist(split)
  assert images.dtype == np.uint8
  assert images.shape == (num_images, 28, 28, 1)
  assert set(np.unique(images).tolist()) == {0, 1}
  assert int(images.sum(dtype=np.int64)) == num_ones
  assert int(images[0].sum()) == first_ones
  # Row-major: flat pixel k of a stored row is pixel (k // 28, k % 28) of the image.
  row, col = divmod(first_index, 28)
  assert images[0, row, col, 0] == 1
  assert not images[0].reshape(-1)[:first_index].any()


@pytest.mark.parametrize('split,stem', [('train', 'train'), ('validation', 'valid'),
                                        ('test', 'test')])
def test_matches_shared_mat_files(split, stem):
  path = os.path.join(SHARED_MNIST, f'binarized_mnist_{stem}.mat')
  if not os.path.exists(path):
    pytest.skip(f'{path} not available')
  x = scipy.io.loadmat(path)['X']
  np.testing.assert_array_equal(data.static_mnist(split), x.reshape(-1, 28, 28, 1))


def test_splits_and_digests_are_the_published_ones():
  assert data.SPLITS == ('train', 'validation', 'test')
  assert mnist.AMAT_SHA256['train'].startswith('ad693b29')
  assert mnist.AMAT_SHA256['validation'].startswith('1de3d397')
  assert mnist.AMAT_SHA256['test'].startswith('e6687bfe')


def test_cached_and_read_only():
  first = data.static_mnist('test')
  assert data.static_mnist('test') is first
  assert not first.flags.writeable
  with pytest.raises(ValueError):
    first[0, 0, 0, 0] = 1


def test_amat_text_matches_a_slow_reference():
  rng = np.random.RandomState(0)
  images = (rng.uniform(size=(3, 28, 28, 1)) < 0.3).astype(np.uint8)
  expected = ''.join(' '.join(str(v) for v in image.reshape(-1)) + '\n' for image in images)
  buffer = mnist._amat_buffer(images)  # pylint: disable=protected-access
  assert buffer.tobytes() == expected.encode('ascii')
  assert len(expected) == 3 * 784 * 2
  assert mnist.amat_sha256(images) == hashlib.sha256(expected.encode('ascii')).hexdigest()


def test_write_amat_files(tmp_path):
  data.write_amat_files(str(tmp_path))
  assert sorted(os.listdir(tmp_path)) == ['binarized_mnist_test.amat',
                                          'binarized_mnist_train.amat',
                                          'binarized_mnist_valid.amat']
  sizes = {'train': 78400000, 'validation': 15680000, 'test': 15680000}
  for split in data.SPLITS:
    path = tmp_path / mnist.AMAT_FILENAMES[split]
    content = path.read_bytes()
    assert len(content) == sizes[split]
    assert hashlib.sha256(content).hexdigest() == mnist.AMAT_SHA256[split]
  with open(tmp_path / 'binarized_mnist_test.amat') as f:
    last_line = f.readlines()[-1]
  np.testing.assert_array_equal(np.array(last_line.split(), np.uint8),
                                data.static_mnist('test')[-1].reshape(-1))


def _assert_one_line_data_error(excinfo, *fragments):
  # Gin appends "\n  In call to configurable '...'" to any exception raised inside a
  # configurable; the error's own message is the first line, and is the whole message.
  assert isinstance(excinfo.value, data.DataError)
  assert isinstance(excinfo.value, errors.UserError)
  message, *gin_context = str(excinfo.value).split('\n')
  assert message
  assert all(line.startswith('  In call to configurable ') for line in gin_context)
  for fragment in fragments:
    assert fragment in message


def test_one_flipped_bit_fails_the_digest(tmp_path):
  with np.load(mnist.ASSET_PATH) as archive:
    arrays = {name: archive[name] for name in archive.files}
  arrays['test'][1234, 56] ^= 0b00010000  # one pixel of test image 1234
  path = tmp_path / 'flipped.npz'
  np.savez_compressed(path, **arrays)
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('test', path=str(path))
  _assert_one_line_data_error(excinfo, 'test', 'SHA-256', str(path))
  # The other splits of that copy are intact, and load.
  assert data.static_mnist('validation', path=str(path)).shape == (10000, 28, 28, 1)


def test_one_flipped_bit_in_the_file_is_an_error(tmp_path):
  content = bytearray(open(mnist.ASSET_PATH, 'rb').read())
  with zipfile.ZipFile(mnist.ASSET_PATH) as archive:
    info = archive.getinfo('test.npy')
  name_length, extra_length = struct.unpack('<HH', content[info.header_offset + 26:
                                                           info.header_offset + 30])
  data_start = info.header_offset + 30 + name_length + extra_length
  content[data_start + info.compress_size // 2] ^= 0b00000100
  path = tmp_path / 'corrupted.npz'
  path.write_bytes(bytes(content))
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('test', path=str(path))
  _assert_one_line_data_error(excinfo, str(path))


def test_missing_truncated_or_incomplete_asset(tmp_path):
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('test', path=str(tmp_path / 'absent.npz'))
  _assert_one_line_data_error(excinfo, 'not found', 'absent.npz')

  truncated = tmp_path / 'truncated.npz'
  truncated.write_bytes(open(mnist.ASSET_PATH, 'rb').read()[:100000])
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('test', path=str(truncated))
  _assert_one_line_data_error(excinfo, 'truncated.npz')

  with np.load(mnist.ASSET_PATH) as archive:
    test_only = {'test': archive['test']}
  partial = tmp_path / 'partial.npz'
  np.savez_compressed(partial, **test_only)
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('train', path=str(partial))
  _assert_one_line_data_error(excinfo, "'train'")

  wrong_shape = tmp_path / 'wrong_shape.npz'
  np.savez_compressed(wrong_shape, test=test_only['test'][:-1])
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('test', path=str(wrong_shape))
  _assert_one_line_data_error(excinfo, '(9999, 98)')


def test_unknown_split():
  with pytest.raises(data.DataError) as excinfo:
    data.static_mnist('valid')
  _assert_one_line_data_error(excinfo, "'valid'", 'train, validation, test')
  with pytest.raises(data.DataError):
    data.tfds_binarized_mnist('training')


def test_tfds_builder_gives_the_same_arrays(tmp_path):
  # Builds all three splits through TFDS (about 25 s on 2 cores), then reads two.
  for split in ('test', 'validation'):
    images = data.tfds_binarized_mnist(split, data_dir=str(tmp_path))
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images, data.static_mnist(split))
  assert (tmp_path / 'binarized_mnist' / '1.0.0' / 'dataset_info.json').exists()


def _coded_images(num_images):
  """Binary images whose first 8 pixels spell their index, to identify them."""
  images = np.zeros((num_images, 28, 28, 1), np.uint8)
  bits = (np.arange(num_images)[:, None] >> np.arange(8)) & 1
  images[:, 0, :8, 0] = bits
  images[:, 27, 27, 0] = 1
  return images


def _indices(batch):
  batch = np.asarray(batch)
  return (batch[:, 0, :8, 0].astype(np.int64) << np.arange(8)).sum(axis=1).tolist()


def _epoch(dataset):
  return [_indices(batch) for batch in dataset]


def test_make_dataset_one_epoch_in_order():
  images = _coded_images(37)
  batches = list(data.make_dataset(images, batch_size=8))
  assert [tuple(b.shape) for b in batches] == [(8, 28, 28, 1)] * 4 + [(5, 28, 28, 1)]
  for batch in batches:
    assert batch.dtype == tf.float32
    assert set(np.unique(batch.numpy()).tolist()) == {0., 1.}
  assert sum(_epoch(batches), []) == list(range(37))
  np.testing.assert_array_equal(np.concatenate([b.numpy() for b in batches]),
                                images.astype(np.float32))


def test_make_dataset_drop_remainder():
  batches = _epoch(data.make_dataset(_coded_images(37), batch_size=8, drop_remainder=True))
  assert [len(b) for b in batches] == [8, 8, 8, 8]


def test_make_dataset_shuffles_each_epoch_and_follows_the_seed():
  images = _coded_images(37)
  order = sum(_epoch(data.make_dataset(images, batch_size=8, shuffle=True, seed=3)), [])
  assert sorted(order) == list(range(37))
  assert order != list(range(37))

  repeated = data.make_dataset(images, batch_size=8, shuffle=True, repeat=True, seed=3)
  batches = _epoch(repeated.take(15))  # 3 epochs of 5 batches, the last of 5 images
  assert [len(b) for b in batches] == [8, 8, 8, 8, 5] * 3
  epochs = [sum(batches[5 * i:5 * i + 5], []) for i in range(3)]
  for epoch in epochs:
    assert sorted(epoch) == list(range(37))
  assert epochs[0] == order  # the same seed gives the same first epoch
  assert epochs[1] != epochs[0] and epochs[2] != epochs[1]

  other = sum(_epoch(data.make_dataset(images, batch_size=8, shuffle=True, seed=4)), [])
  assert other != order


def test_make_dataset_on_real_data():
  images = data.static_mnist('test')
  total = 0.
  count = 0
  for batch in data.make_dataset(images, batch_size=1000, shuffle=True):
    assert batch.shape == (1000, 28, 28, 1) and batch.dtype == tf.float32
    total += float(tf.reduce_sum(batch))
    count += batch.shape[0]
  assert count == 10000
  assert total == EXPECTED['test'][1]


def test_make_dataset_rejects_bad_arguments():
  with pytest.raises(errors.UserError, match='batch_size'):
    data.make_dataset(_coded_images(3), batch_size=0)
  with pytest.raises(errors.UserError, match='no images'):
    data.make_dataset(np.zeros((0, 28, 28, 1), np.uint8), batch_size=2)


def test_subsets_are_spread_through_a_class_sorted_split():
  labels = np.repeat(np.arange(10), 30)  # 300 examples, sorted by class like MNIST's test.
  np.testing.assert_array_equal(subsets.spread(labels, 5), [0, 2, 4, 6, 8])
  np.testing.assert_array_equal(subsets.spread(labels, 10), np.arange(10))
  np.testing.assert_array_equal(subsets.spread(labels[:3], 8), labels[:3])
  assert subsets.stride(300, 5) == 60 and subsets.stride(3, 8) == 1
  # The real test split: its first 500 images are all zeros, and 500 spread through it
  # hold every digit about equally. Zeros have the most ink, so the first 500 images'
  # mean ink is far from the split's, and the spread ones' close to it.
  test = data.static_mnist('test').reshape(10000, -1).mean(axis=1)
  spread_ink, first_ink = subsets.spread(test, 500).mean(), test[:500].mean()
  assert abs(spread_ink - test.mean()) < 0.005 < 0.02 < first_ink - test.mean()


def test_gin_configurables_keep_their_python_names():
  gin.clear_config()
  try:
    gin.parse_config(['make_dataset.batch_size = 4', 'make_dataset.shuffle = False',
                      "static_mnist.path = None", 'tfds_binarized_mnist.data_dir = None'])
    batches = _epoch(data.make_dataset(_coded_images(10)))  # pylint: disable=no-value-for-parameter
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
  finally:
    gin.clear_config()
