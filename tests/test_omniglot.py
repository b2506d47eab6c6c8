"""Tests for the 28x28 binarized Omniglot of `brokenelbo.data.omniglot`.

They read the two small archives of the TFDS `omniglot` builder and the whole set's two
NumPy archives in `../shared/data/omniglot` (skipped where they are absent); each archive
is decoded once per module (the library keeps it for the process) except where a test says
why.
"""

import hashlib
import importlib
import io
import os
import pathlib
import shutil
import zipfile

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import data
from brokenelbo import errors
from brokenelbo.data import omniglot
from brokenelbo.utils import cli

SHARED_OMNIGLOT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), '..', 'shared', 'data',
    'omniglot')

SMALL = dict(zip_dir=SHARED_OMNIGLOT, train_source='small1', test_source='small2')

# A known drawing: the first drawer's first Balinese character, in small1.
KNOWN_MEMBER = 'images_background_small1/Balinese/character01/0108_01.png'

# Counted with this preprocessing (a regression check; the tests below derive the
# pixels independently): pixels equal to 1 in all of small1 and in all of small2.
NUM_ONES = {'small1': 161954, 'small2': 196521}


def _require_shared():
  if not os.path.isdir(SHARED_OMNIGLOT):
    pytest.skip(f'{SHARED_OMNIGLOT} not available')


def _require_npz():
  _require_shared()
  if not all(os.path.isfile(os.path.join(SHARED_OMNIGLOT, name))
             for name in omniglot.OMNIGLOT_NPZ.values()):
    pytest.skip(f'the Omniglot NumPy archives are not in {SHARED_OMNIGLOT}')


@pytest.fixture(scope='module')
def background():
  """(images [964, 20, 28, 28, 1], labels) of images_background.npz, once for the module."""
  _require_npz()
  return omniglot.omniglot_npz_source('train', SHARED_OMNIGLOT)


@pytest.fixture(scope='module')
def small1():
  """(images, labels) of small1, decoded once for the module."""
  _require_shared()
  return omniglot.omniglot_source('small1', zip_dir=SHARED_OMNIGLOT)


@pytest.fixture(scope='module')
def small2():
  _require_shared()
  return omniglot.omniglot_source('small2', zip_dir=SHARED_OMNIGLOT)


def _pil_decode(png):
  """Independent decoder: Pillow, not `tf.io.decode_png`."""
  pil = pytest.importorskip('PIL.Image')
  image = pil.open(io.BytesIO(png))
  assert image.mode == '1' and image.size == (105, 105)  # 1-bit black-and-white drawings
  return np.array(image.convert('L'))


def _expected_28x28(original):
  """Invert, `tf.image.resize` by area to 28x28, threshold at 0.5: the documented method."""
  strokes = (original == 0).astype(np.float32)[None, :, :, None]
  means = tf.image.resize(strokes, (28, 28), method='area').numpy()[0]
  # No mean is within 1/450 of 0.5 (means are multiples of 1/225), so float32 rounding
  # cannot move a pixel across the threshold.
  assert np.abs(means - 0.5).min() > 1 / 450 - 1e-6
  return (means > 0.5).astype(np.uint8)


def test_small1_shape_values_and_stroke_fraction(small1):
  images, labels = small1
  assert images.dtype == np.uint8
  assert images.shape == (2720, 28, 28, 1)
  assert set(np.unique(images).tolist()) == {0, 1}
  # Strokes are a minority of the pixels, and no drawing vanishes.
  assert 0.02 < images.mean() < 0.2
  assert images.reshape(2720, -1).sum(axis=1).min() > 0
  assert int(images.sum(dtype=np.int64)) == NUM_ONES['small1']
  assert not images.flags.writeable and not labels.flags.writeable
  # 136 characters of 20 drawings each; labels are the builder's 0-based numbers.
  values, counts = np.unique(labels, return_counts=True)
  assert len(values) == 136 and set(counts.tolist()) == {20}
  assert values.min() >= 0 and values.max() < 1623


def test_small2_counts(small2):
  images, labels = small2
  assert images.shape == (3120, 28, 28, 1)
  assert int(images.sum(dtype=np.int64)) == NUM_ONES['small2']
  assert len(np.unique(labels)) == 156


def test_deterministic_across_loads(small1):
  # A second, uncached read and decode of the archive (the cache would return the same
  # object): same pixels, same order, same labels.
  path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES['small1'])
  images, labels = omniglot._load_omniglot_zip('small1', path)  # pylint: disable=protected-access
  np.testing.assert_array_equal(images, small1[0])
  np.testing.assert_array_equal(labels, small1[1])
  assert omniglot.omniglot_source('small1', zip_dir=SHARED_OMNIGLOT) is small1


def test_one_known_image_exactly(small1):
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES['small1'])
  with zipfile.ZipFile(path) as archive:
    members = [m for m in archive.namelist() if m.endswith('.png')]
    original = _pil_decode(archive.read(KNOWN_MEMBER))
  assert set(np.unique(original).tolist()) == {0, 255}
  assert 0.02 < (original == 0).mean() < 0.5  # black strokes on white paper

  # Its place: TFDS sorts a split's examples by the MD5 of their keys salted with the
  # split name; the builder's key is '<alphabet>_<character number - 1>_<file name>'.
  def key(member):
    _, alphabet, character, filename = member.split('/')
    return f'{alphabet}_{int(character[len("character"):]) - 1}_{filename}'

  hasher = hashing.Hasher('small1')
  order = sorted(members, key=lambda m: hasher.hash_key(key(m)))
  index = order.index(KNOWN_MEMBER)
  assert key(KNOWN_MEMBER) == 'Balinese_0_0108_01.png'

  expected = _expected_28x28(original)
  np.testing.assert_array_equal(small1[0][index], expected)
  assert small1[1][index] == 107  # file 0108_01.png: character 108, 0-based
  assert int(expected.sum()) == 66


def test_all_of_small1_match_tf_area_resize(small1):
  # Every image: Pillow decode, `tf.image.resize(method='area')`, threshold 0.5, in the
  # order of the library's reader (checked against the TFDS builder below).
  path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES['small1'])
  _, _, pngs = omniglot._read_omniglot_zip('small1', path)  # pylint: disable=protected-access
  originals = np.stack([_pil_decode(png) for png in pngs])
  strokes = (originals == 0).astype(np.float32)[..., None]
  means = tf.image.resize(strokes, (28, 28), method='area').numpy()
  counts = omniglot.omniglot_stroke_counts(originals)
  np.testing.assert_allclose(means, counts / 225., rtol=0., atol=1e-6)
  np.testing.assert_array_equal(small1[0], (means > 0.5).astype(np.uint8))
  # Area resizing keeps the amount of stroke, and thresholding nearly so.
  assert abs(means.mean() - (originals == 0).mean()) < 1e-6
  assert abs(small1[0].mean() - means.mean()) < 0.002


def test_area_resize_by_hand():
  # Output pixel i covers input [3.75 i, 3.75 (i + 1)), i.e. quarter pixels [15 i, 15 i + 15).
  weights = omniglot._area_weights()  # pylint: disable=protected-access
  assert weights.shape == (28, 105)
  np.testing.assert_array_equal(weights.sum(axis=1), np.full(28, 15))
  np.testing.assert_array_equal(weights.sum(axis=0), np.full(105, 4))
  np.testing.assert_array_equal(weights[0, :5], [4, 4, 4, 3, 0])   # input 3: [12, 16)
  np.testing.assert_array_equal(weights[1, 3:8], [1, 4, 4, 4, 2])  # input 7: [28, 32)

  originals = np.full((4, 105, 105, 1), 255, np.uint8)
  originals[1] = 0                   # all stroke
  originals[2, 3, 3] = 0             # one stroke pixel, shared by 4 output pixels
  originals[3, :4, :4] = 0           # a 4x4 block: 3.75x3.75 of it in output (0, 0)
  counts = omniglot.omniglot_stroke_counts(originals)[..., 0]
  assert counts.dtype == np.int32
  assert not counts[0].any()
  assert (counts[1] == 225).all()
  np.testing.assert_array_equal(counts[2, :2, :2], [[9, 3], [3, 1]])
  assert counts[2].sum() == 16
  np.testing.assert_array_equal(counts[3, :2, :2], [[225, 15], [15, 1]])
  assert counts[3].sum() == 256
  images = omniglot.downsample_omniglot(originals)
  assert images.dtype == np.uint8 and images.shape == (4, 28, 28, 1)
  assert [int(x.sum()) for x in images] == [0, 784, 0, 1]
  # The same means from TensorFlow's area resize.
  tf_means = tf.image.resize((originals == 0).astype(np.float32), (28, 28),
                             method='area').numpy()[..., 0]
  np.testing.assert_allclose(tf_means, counts / 225., rtol=0., atol=1e-6)


def test_splits_of_the_small_archives(small1, small2):
  train = omniglot.omniglot('train', **SMALL)
  validation = omniglot.omniglot('validation', **SMALL)
  test = omniglot.omniglot('test', **SMALL)
  assert (len(train), len(validation), len(test)) == (2448, 272, 2120)
  for images in (train, validation, test):
    assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
    assert not images.flags.writeable
  # Train then validation is small1 in the builder's order: the last 272 are held out.
  np.testing.assert_array_equal(np.concatenate([train, validation]), small1[0])
  # Test is small2 without the characters of small1 (its 1,000 Greek and Latin images,
  # which are byte for byte in small1 too).
  shared = np.isin(small2[1], small1[1])
  assert int(shared.sum()) == 1000
  np.testing.assert_array_equal(test, small2[0][~shared])
  assert omniglot.omniglot('train', **SMALL).sum() == train.sum()  # same again


def test_small_archives_share_exactly_greek_and_latin():
  _require_shared()
  contents = {}
  for source in ('small1', 'small2'):
    path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES[source])
    with zipfile.ZipFile(path) as archive:
      contents[source] = {m.split('/', 1)[1]: hashlib.sha1(archive.read(m)).hexdigest()
                          for m in archive.namelist() if m.endswith('.png')}
  common = set(contents['small1']) & set(contents['small2'])
  assert len(common) == 1000
  assert {m.split('/')[0] for m in common} == {'Greek', 'Latin'}
  assert all(contents['small1'][m] == contents['small2'][m] for m in common)


def test_validation_fraction(small1):
  del small1  # loaded once for the module
  everything = omniglot.omniglot('train', validation_fraction=0., **SMALL)
  assert len(everything) == 2720
  quarter = omniglot.omniglot('validation', validation_fraction=0.25, **SMALL)
  np.testing.assert_array_equal(quarter, everything[-680:])


def _assert_one_line_data_error(excinfo, *fragments):
  assert isinstance(excinfo.value, data.DataError)
  assert isinstance(excinfo.value, errors.UserError) and isinstance(excinfo.value, ValueError)
  message, *gin_context = str(excinfo.value).split('\n')
  assert all(line.startswith('  In call to configurable ') for line in gin_context)
  for fragment in fragments:
    assert fragment in message, message


def test_missing_archive_names_file_and_folder(tmp_path):
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('train', zip_dir=str(tmp_path))
  _assert_one_line_data_error(excinfo, 'images_background.zip', str(tmp_path))

  _require_shared()
  shutil.copy(os.path.join(SHARED_OMNIGLOT, 'images_background_small1.zip'), tmp_path)
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('test', zip_dir=str(tmp_path), train_source='small1',
                  test_source='small2')
  _assert_one_line_data_error(excinfo, 'images_background_small2.zip', str(tmp_path))


def test_damaged_archive(tmp_path):
  _require_shared()
  content = bytearray(
      open(os.path.join(SHARED_OMNIGLOT, 'images_background_small1.zip'), 'rb').read())
  content[len(content) // 2] ^= 0b00000100
  (tmp_path / 'images_background_small1.zip').write_bytes(bytes(content))
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot_source('small1', zip_dir=str(tmp_path))
  _assert_one_line_data_error(excinfo, 'images_background_small1.zip', 'SHA-256')

  (tmp_path / 'images_background_small2.zip').write_bytes(b'not a zip file')
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot_source('small2', zip_dir=str(tmp_path))
  _assert_one_line_data_error(excinfo, 'images_background_small2.zip')


@pytest.mark.parametrize('kwargs,fragments', [
    (dict(split='valid'), ("'valid'", 'train, validation, test')),
    (dict(split='test', train_source='small1', test_source='small1'), ('both',)),
])
def test_bad_arguments(kwargs, fragments):
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot(**kwargs)
  _assert_one_line_data_error(excinfo, *fragments)


@pytest.mark.parametrize('kwargs,line', [
    (dict(train_source='background'), "omniglot.train_source = 'background': must be one of"),
    (dict(test_source='small3'), "omniglot.test_source = 'small3': must be one of"),
    (dict(validation_fraction=1.), 'omniglot.validation_fraction = 1.0: must be'),
    (dict(validation_fraction=-0.1), 'omniglot.validation_fraction = -0.1: must be'),
    (dict(validation_fraction=True), 'omniglot.validation_fraction = True: must be'),
])
def test_values_outside_their_domains(kwargs, line):
  with pytest.raises(errors.UserError) as excinfo:
    omniglot.omniglot('train', **kwargs)
  assert str(excinfo.value).split('\n')[0].startswith(line), excinfo.value


def test_unknown_source():
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot_source('images_background')
  _assert_one_line_data_error(excinfo, "'images_background'", 'small1')


def test_no_validation_split_when_fraction_is_zero(small1):
  del small1
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('validation', validation_fraction=0, **SMALL)
  _assert_one_line_data_error(excinfo, 'no Omniglot validation images')


@pytest.mark.parametrize('family', ['---', '+++'])
def test_gin_files_switch_a_family_to_omniglot(family):
  cli.parse_gin([f'configs/{family}.gin', 'configs/omniglot.gin'], [])
  assert gin.query_parameter('train.dataset').selector == 'omniglot'
  assert gin.query_parameter('omniglot.train_source') == 'train'
  assert gin.query_parameter('omniglot.test_source') == 'test'
  assert gin.query_parameter('omniglot.zip_dir') is None
  assert gin.query_parameter('omniglot.npz_dir') is None
  # The other bindings are the family's.
  assert gin.query_parameter('train.batch_size') == 100
  assert gin.query_parameter('rate_distortion_loss.objective').selector == 'beta_vae'


def test_small_gin_file_loads_the_small_archives(small1):
  del small1
  cli.parse_gin(['configs/---.gin', 'configs/omniglot_small.gin', 'configs/smoke.gin'],
                [f'omniglot.zip_dir = {SHARED_OMNIGLOT!r}'])
  assert gin.query_parameter('train.dataset').selector == 'omniglot'
  assert gin.query_parameter('omniglot.train_source') == 'small1'
  assert gin.query_parameter('omniglot.test_source') == 'small2'
  # `train` calls `dataset(split)`; the bound function gives the small splits.
  dataset = gin.query_parameter('train.dataset').scoped_configurable_fn
  np.testing.assert_array_equal(dataset('test'), omniglot.omniglot('test', **SMALL))
  assert dataset('train').shape == (2448, 28, 28, 1)


def _omniglot_module():
  pytest.importorskip('importlib_resources')  # tensorflow-datasets needs it to build
  return importlib.import_module('tensorflow_datasets.image_classification.omniglot')


def test_builder_splits_and_archives_are_those_assumed(monkeypatch, tmp_path):
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  from tensorflow_datasets.core.download import checksums  # pylint: disable=g-import-not-at-top
  omniglot_lib = _omniglot_module()
  assert str(omniglot_lib.Omniglot.VERSION) == '3.0.0'

  class FakeDownloadManager:

    def download_and_extract(self, urls):
      return {name: os.path.basename(url) for name, url in urls.items()}

  # The real `_split_generators`, with the archives' file names as their folders, and
  # names that fill the builder's 50 alphabets and 1,623 characters.
  monkeypatch.setattr(omniglot_lib, '_get_names', lambda dirs: (
      {f'alphabet{i}' for i in range(50)}, [f'character{i}' for i in range(1623)]))
  builder = tfds.builder('omniglot', data_dir=str(tmp_path))
  generators = builder._split_generators(FakeDownloadManager())  # pylint: disable=protected-access
  mapping = {str(g.name): g.gen_kwargs['directory'] for g in generators}
  assert mapping == omniglot.OMNIGLOT_ARCHIVES

  infos = checksums.get_all_url_infos()
  for url in omniglot_lib._DL_URLS.values():  # pylint: disable=protected-access
    source = next(s for s, name in omniglot.OMNIGLOT_ARCHIVES.items() if url.endswith(name))
    assert infos[url].checksum == omniglot.OMNIGLOT_ARCHIVE_SHA256[source]
    assert infos[url].filename == omniglot.OMNIGLOT_ARCHIVES[source]
  image = builder.info.features['image']
  assert image.shape == (105, 105, 3) and image.encoding_format == 'png'


def test_tfds_builder_stores_what_the_reader_reads(tmp_path, small1, small2):
  # The full builder needs all four archives (it names all 50 alphabets), and only the
  # small ones are here. This runs its code on those two: a subclass whose
  # `_split_generators` asks the download manager for small1 and small2 only (found in
  # `manual_dir`, checked against the registered sizes and SHA-256), and whose unused
  # alphabet names are placeholders. Downloading, extraction, `_generate_examples`, the
  # features and the writer's order are the builder's own. About 15 s on 2 cores.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  omniglot_lib = _omniglot_module()

  class SmallOmniglot(omniglot_lib.Omniglot, skip_registration=True):
    name = 'omniglot'

    def _split_generators(self, dl_manager):
      # pylint: disable=protected-access
      urls = {s: omniglot_lib._DL_URLS[s] for s in ('small1', 'small2')}
      dirs = dl_manager.download_and_extract(urls)
      alphabets, _ = omniglot_lib._get_names(dirs.values())
      self.info.features['alphabet'].names = sorted(alphabets) + [
          f'(unused {i})' for i in range(50 - len(alphabets))]
      return [tfds.core.SplitGenerator(name=s, gen_kwargs={'directory': d})
              for s, d in dirs.items()]

  builder = SmallOmniglot(data_dir=str(tmp_path))
  for source, (images, labels) in (('small1', small1), ('small2', small2)):
    tfds_images, tfds_labels = omniglot._load_omniglot_tfds(  # pylint: disable=protected-access
        builder, source, manual_dir=SHARED_OMNIGLOT)
    np.testing.assert_array_equal(tfds_images, images)
    np.testing.assert_array_equal(tfds_labels, labels)
  assert builder.info.splits['small1'].num_examples == 2720

  # TFDS's own decoding (RGB) of the stored images equals the archive's PNGs, in order.
  stored = tfds.as_numpy(builder.as_dataset(
      split='small1', batch_size=-1, shuffle_files=False,
      read_config=tfds.ReadConfig(interleave_cycle_length=1)))
  path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES['small1'])
  _, _, pngs = omniglot._read_omniglot_zip('small1', path)  # pylint: disable=protected-access
  originals = np.stack([_pil_decode(png) for png in pngs])
  assert stored['image'].shape == (2720, 105, 105, 3)
  for channel in range(3):
    np.testing.assert_array_equal(stored['image'][..., channel], originals)


def _drawer(key):
  """The 0-based drawer of a TFDS example key ('Balinese_0_0108_01.png': 0)."""
  return int(key.rsplit('_', 1)[1][:-len('.png')]) - 1


def test_npz_digests_and_sizes():
  _require_npz()
  for source, name in omniglot.OMNIGLOT_NPZ.items():
    path = os.path.join(SHARED_OMNIGLOT, name)
    with open(path, 'rb') as f:
      assert hashlib.sha256(f.read()).hexdigest() == omniglot.OMNIGLOT_NPZ_SHA256[source]
    with np.load(path) as archive:
      characters = omniglot.OMNIGLOT_NUM_CHARACTERS[source]
      assert archive['images'].shape == (characters, 20, 105, 105)
      assert archive['images'].dtype == bool
      np.testing.assert_array_equal(archive['labels'],
                                    np.repeat(np.arange(characters)[:, None], 20, axis=1))


@pytest.mark.parametrize('source', ['small1', 'small2'])
def test_small_archives_are_the_npz_drawings_at_label_and_drawer(source, background):
  # Every drawing of a small archive, bit for bit (the PNG decoded by Pillow), is the
  # background archive's at (its TFDS label, its drawer); so are its 28x28 images, from
  # the zip path and from the npz path.
  path = os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_ARCHIVES[source])
  keys, labels, pngs = omniglot._read_omniglot_zip(source, path)  # pylint: disable=protected-access
  drawers = np.array([_drawer(key) for key in keys])
  with np.load(os.path.join(SHARED_OMNIGLOT, omniglot.OMNIGLOT_NPZ['train'])) as archive:
    paper = archive['images'][labels, drawers]
  originals = np.stack([_pil_decode(png) for png in pngs])
  np.testing.assert_array_equal(originals == 255, paper)
  zip_images, zip_labels = omniglot.omniglot_source(source, zip_dir=SHARED_OMNIGLOT)
  np.testing.assert_array_equal(zip_labels, labels)
  np.testing.assert_array_equal(background[0][labels, drawers], zip_images)
  assert len(zip_images) == omniglot.OMNIGLOT_NUM_IMAGES[source]
  np.testing.assert_array_equal(background[1][labels], labels)


def test_npz_splits(background, monkeypatch):
  monkeypatch.delenv(omniglot.OMNIGLOT_DIR_VARIABLE, raising=False)
  monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  train, validation, test = (omniglot.omniglot(split) for split in omniglot.OMNIGLOT_SPLITS)
  assert (len(train), len(validation), len(test)) == (17352, 1928, 13180)
  # 2 validation drawers of each character, in (character, drawer) order then permuted.
  held_out = omniglot.omniglot_npz_validation(964, 0.1)
  assert held_out.shape == (964, 20) and set(held_out.sum(axis=1).tolist()) == {2}
  images = background[0]
  for split, mask in ((train, ~held_out), (validation, held_out)):
    order = np.random.RandomState(1).permutation(int(mask.sum()))
    np.testing.assert_array_equal(split, images[mask][order])
  evaluation, labels = omniglot.omniglot_npz_source('test', SHARED_OMNIGLOT)
  np.testing.assert_array_equal(labels, 964 + np.arange(659))
  np.testing.assert_array_equal(
      test, evaluation.reshape(-1, 28, 28, 1)[np.random.RandomState(1).permutation(13180)])
  # Exact pixel counts (a regression check of the whole path).
  assert [int(x.sum(dtype=np.int64)) for x in (train, validation, test)] == [
      1055718, 117472, 869948]
  assert not train.flags.writeable
  quarter = omniglot.omniglot('validation', validation_fraction=0.25, npz_dir=SHARED_OMNIGLOT)
  assert len(quarter) == 964 * 5
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('validation', validation_fraction=0.02, npz_dir=SHARED_OMNIGLOT)
  _assert_one_line_data_error(excinfo, 'no Omniglot validation images', '0 of 20 drawers')


def test_npz_folder_is_found_or_named(monkeypatch, tmp_path):
  _require_npz()
  monkeypatch.chdir(tmp_path)  # No ../shared/data/omniglot here.
  monkeypatch.delenv(omniglot.OMNIGLOT_DIR_VARIABLE, raising=False)
  assert omniglot.omniglot_npz_dir() is None  # The TFDS builder.
  monkeypatch.setenv(omniglot.OMNIGLOT_DIR_VARIABLE, SHARED_OMNIGLOT)
  assert omniglot.omniglot_npz_dir() == SHARED_OMNIGLOT
  monkeypatch.setenv(omniglot.OMNIGLOT_DIR_VARIABLE, '')
  assert omniglot.omniglot_npz_dir() is None
  monkeypatch.setenv(omniglot.OMNIGLOT_DIR_VARIABLE, str(tmp_path))
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot_npz_dir()
  _assert_one_line_data_error(excinfo, '$BROKENELBO_OMNIGLOT_DIR', str(tmp_path),
                              'images_background.npz')
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('train', npz_dir=str(tmp_path))
  _assert_one_line_data_error(excinfo, 'omniglot.npz_dir', str(tmp_path))
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('train', npz_dir=SHARED_OMNIGLOT, zip_dir=SHARED_OMNIGLOT)
  _assert_one_line_data_error(excinfo, 'omniglot.npz_dir is bound')
  # The default folder, relative to the working directory.
  monkeypatch.delenv(omniglot.OMNIGLOT_DIR_VARIABLE)
  (tmp_path / 'shared' / 'data').mkdir(parents=True)
  (tmp_path / 'shared' / 'data' / 'omniglot').symlink_to(SHARED_OMNIGLOT)
  (tmp_path / 'work').mkdir()
  monkeypatch.chdir(tmp_path / 'work')
  assert omniglot.omniglot_npz_dir() == os.path.join('..', 'shared', 'data', 'omniglot')


def test_damaged_npz(tmp_path):
  _require_npz()
  for name in omniglot.OMNIGLOT_NPZ.values():
    content = bytearray((pathlib.Path(SHARED_OMNIGLOT) / name).read_bytes())
    if name == 'images_evaluation.npz':
      content[len(content) // 2] ^= 0b00010000
    (tmp_path / name).write_bytes(bytes(content))
  with pytest.raises(data.DataError) as excinfo:
    omniglot.omniglot('test', npz_dir=str(tmp_path))
  _assert_one_line_data_error(excinfo, str(tmp_path / 'images_evaluation.npz'), 'SHA-256',
                              'is not the Omniglot images_evaluation.npz')
