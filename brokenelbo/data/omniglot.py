"""Omniglot, 28x28 and binarized, rebuilt from the 105x105 originals of Lake et al. [1].

The paper (Alemi et al., 2018, Section 5) uses the 28x28 Omniglot of Burda et al. [2]
(`chardata.mat`: 24,345 training and 8,070 test images in grey levels), which is not
available here. `omniglot(split)` rebuilds it from the drawings of Lake et al. [1], with
other splits and pixels: the `uint8` array `[N, 28, 28, 1]` of `mnist.static_mnist`. The
drawings come from one of three sources, the first that applies:

- `zip_dir`: the zip files of the TFDS `omniglot` builder, read directly (SHA-256 checked);
  the only source of the two small archives ('small1', 'small2').
- the whole set as two NumPy archives (`OMNIGLOT_NPZ`: `images_background.npz`, 964
  characters, and `images_evaluation.npz`, 659, each `images`: `bool`
  `[characters, 20 drawers, 105, 105]`, True on the paper, SHA-256 checked) in the folder
  `npz_dir`, else `$BROKENELBO_OMNIGLOT_DIR`, else `../shared/data/omniglot` (relative to
  the working directory) if it holds them. Character c of the background archive is the
  TFDS label c (the 1-based number of its PNG files, `0108_01.png`, less one), of the
  evaluation archive the label 964 + c, and drawer d the PNG `_<d + 1>`: the 5,840 images
  of the two small archives are bit for bit those of the background archive at (label,
  drawer) (`tests/test_omniglot.py` compares them all).
- the TFDS `omniglot` builder, which downloads the archives once.

Preprocessing (`downsample_omniglot`), the same for every source: each 105x105 1-bit
drawing (0 on the strokes) is inverted, resized to 28x28 by area (each pixel the stroke
fraction of its 3.75x3.75 input square, exact in 1/225ths) and thresholded: 1 where the
fraction exceeds 0.5 (no seed, no ties). Unlike sampling a Bernoulli of each fraction, as
is done with `chardata.mat`, this keeps the amount of stroke and the thin strokes'
connectivity.

Splits, 'test' always being `test_source` less the characters (TFDS 'label') of
`train_source`:

- zip files and builder: in the builder's fixed pseudo-random order (`omniglot_source`), the
  last `round(validation_fraction * N)` images of `train_source` are 'validation', the
  others 'train'. Full data ('train'/'test' = images_background/images_evaluation,
  disjoint alphabets): 17,352 / 1,928 / 13,180; 'small1'/'small2' (tests, offline): 2,448 /
  272 / 2,120 (small2's Greek and Latin, 1,000 images, are also small1's and leave its
  test split).
- NumPy archives (no alphabet names, so not the builder's order): of each character,
  `round(validation_fraction * 20)` drawers are 'validation', the first of a permutation
  of its 20 drawers drawn with `np.random.RandomState(0)` (`omniglot_npz_validation`;
  NumPy's legacy generator, whose streams are frozen), every character thus in both; each
  split then in a fixed pseudo-random order (a permutation by `np.random.RandomState(1)`).
  17,352 / 1,928 / 13,180 at the default 0.1 (2 drawers of each character): the sizes of
  the builder's split, other images.

[1]: Lake, Salakhutdinov, Tenenbaum. Human-level concept learning through probabilistic
     program induction. _Science_, 350(6266):1332-1338, 2015.
[2]: Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. _ICLR_, 2016.
     https://arxiv.org/abs/1509.00519
"""

import hashlib
import os
import threading
import zipfile
import zlib

from absl import logging
import gin
import numpy as np
import tensorflow as tf

# pylint: disable-next=g-importing-member
from brokenelbo import domains
from brokenelbo.data.mnist import DataError, IMAGE_SHAPE, import_tfds, one_line

# The splits of tensorflow-datasets' `omniglot` builder (version 3.0.0) and the archive of
# brendenlake/omniglot that each is built from (`_DL_URLS` in
# tensorflow_datasets/image_classification/omniglot.py), with the archives' SHA-256 digests
# (tensorflow_datasets/url_checksums/omniglot.txt) and their numbers of images (20 drawings
# of each character).
OMNIGLOT_ARCHIVES = {
    'train': 'images_background.zip',           # 30 alphabets, 964 characters.
    'test': 'images_evaluation.zip',            # 20 other alphabets, 659 characters.
    'small1': 'images_background_small1.zip',   # 5 background alphabets, 136 characters.
    'small2': 'images_background_small2.zip',   # 5 background alphabets, 156 characters;
}                                               # Greek and Latin are also in small1.
OMNIGLOT_ARCHIVE_SHA256 = {
    'train': 'ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640',
    'test': '1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee',
    'small1': 'f38eb80f801274ac2b4dff5b24289016bfaba4a7d5bb50deebf27104ad6cb8a4',
    'small2': '3ccaa407515a8778e5d0861875af38b17e418f301ad5bb3b5a6b65d901a41c7f',
}
OMNIGLOT_NUM_IMAGES = {'train': 19280, 'test': 13180, 'small1': 2720, 'small2': 3120}

# The whole set as NumPy archives, for the builder's 'train' and 'test' splits: `images`,
# `bool` `[characters, 20, 105, 105]` (True on the paper), and `labels`, `int64`
# `[characters, 20]` (the character's index in the archive), with their SHA-256 digests.
OMNIGLOT_NPZ = {'train': 'images_background.npz', 'test': 'images_evaluation.npz'}
OMNIGLOT_NPZ_SHA256 = {
    'train': '8bf84167413cd00beacdce3fe582f780ab538d8dbef043a6d688f2527bbce199',
    'test': '0b84c7ffd94c4841c0040e529c86a82eaaccb986d8eadad5673f7991b7475276',
}
OMNIGLOT_NUM_CHARACTERS = {'train': 964, 'test': 659}
OMNIGLOT_NUM_DRAWERS = 20
# The TFDS label of an archive's first character: evaluation's follow background's 964.
_FIRST_LABEL = {'train': 0, 'test': 964}
# Where `omniglot` looks for the NumPy archives when `npz_dir` is not bound: this variable
# (empty: nowhere), else this folder if it holds them (relative to the working directory).
OMNIGLOT_DIR_VARIABLE = 'BROKENELBO_OMNIGLOT_DIR'
DEFAULT_OMNIGLOT_DIR = os.path.join('..', 'shared', 'data', 'omniglot')
# Seeds of the NumPy archives' split: the validation drawers, then the order of each split.
_NPZ_DRAWER_SEED = 0
_NPZ_ORDER_SEED = 1

# The splits that `omniglot(split)` returns.
OMNIGLOT_SPLITS = ('train', 'validation', 'test')

# Side of the original images, and the area resize to 28x28: output pixel i covers input
# pixels [3.75 i, 3.75 (i + 1)), that is [15 i, 15 (i + 1)) in quarter pixels.
OMNIGLOT_ORIGINAL_SIZE = 105
_QUARTERS_PER_OUTPUT_PIXEL = 15    # 4 * 105 / 28
_STROKE_THRESHOLD = 113            # The least count of the 225 quarter-pixel squares of
                                   # an output pixel that is more than half of them.

_DECODE_BATCH = 1024               # Images decoded and resized at a time.

# Preprocessed builder splits of this process: source key -> (images, labels), read-only.
_OMNIGLOT_CACHE = {}
_OMNIGLOT_CACHE_LOCK = threading.Lock()


def clear_cache():
  """Forgets the splits preprocessed so far: the next load reads them again."""
  with _OMNIGLOT_CACHE_LOCK:
    _OMNIGLOT_CACHE.clear()


def _read_only(array):
  array.setflags(write=False)
  return array


def _area_weights():
  """`[28, 105]` integers: quarter pixels that input pixel j shares with output pixel i."""
  out_low = _QUARTERS_PER_OUTPUT_PIXEL * np.arange(IMAGE_SHAPE[0])[:, None]
  in_low = 4 * np.arange(OMNIGLOT_ORIGINAL_SIZE)[None, :]
  overlap = (np.minimum(out_low + _QUARTERS_PER_OUTPUT_PIXEL, in_low + 4) -
             np.maximum(out_low, in_low))
  return np.maximum(overlap, 0)


def omniglot_stroke_counts(originals):
  """Stroke area of each 28x28 pixel of 105x105 Omniglot images, in 1/225ths of a pixel.

  The 105x105 originals are 1-bit drawings: 0 (black) on the strokes, 255 (white)
  elsewhere. Inverted, a stroke pixel is 1 and paper is 0. Resizing by area (box
  filter), each of the 28x28 output pixels is the mean of the inverted image over its
  square of side 105 / 28 = 3.75 input pixels, input pixels cut by the square's edges
  counting for the part inside it. Every edge falls on a quarter of an input pixel, so
  that mean is `count / 225`, with `count` the number of stroke quarter-pixel squares
  (1/16 of an input pixel each) in the output pixel: an integer in [0, 225], computed
  exactly here. `tf.image.resize(..., method='area')` gives the same means in float32.

  Args:
    originals: `uint8` array `[N, 105, 105, 1]` (or `[N, 105, 105]`), values in {0, 255}.

  Returns:
    counts: `int32` array `[N, 28, 28, 1]`, values in [0, 225].
  """
  originals = np.asarray(originals)
  strokes = (originals.reshape((-1,) + (OMNIGLOT_ORIGINAL_SIZE,) * 2) == 0)
  weights = _area_weights().astype(np.float32)
  # Sums of at most 225 products of small integers: exact in float32.
  counts = weights @ strokes.astype(np.float32) @ weights.T
  return np.rint(counts).astype(np.int32)[..., None]


def downsample_omniglot(originals):
  """Binarized 28x28 Omniglot images from the 105x105 originals.

  A pixel is 1 (stroke) when strokes cover more than half of its area:
  `omniglot_stroke_counts(originals) >= 113`, i.e. `count / 225 > 0.5`. No mean can equal
  0.5 exactly (it would need count = 112.5), so the threshold has no ties, and its
  result does not depend on how the means are rounded.

  Args:
    originals: `uint8` array `[N, 105, 105, 1]`, values in {0 (stroke), 255 (paper)}.

  Returns:
    images: `uint8` array `[N, 28, 28, 1]`, values in {0, 1}, 1 on the strokes.
  """
  return (omniglot_stroke_counts(originals) >= _STROKE_THRESHOLD).astype(np.uint8)


def _decode_and_downsample(pngs, origin):
  """Decodes 105x105 1-bit PNGs with `tf.io.decode_png` and applies `downsample_omniglot`."""
  size = OMNIGLOT_ORIGINAL_SIZE

  def decode(png):
    return tf.ensure_shape(tf.io.decode_png(png, channels=1), [size, size, 1])

  dataset = (tf.data.Dataset.from_tensor_slices(tf.constant(list(pngs), tf.string))
             .map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
             .batch(_DECODE_BATCH))
  images = []
  try:
    for batch in dataset:
      originals = batch.numpy()
      if np.any((originals != 0) & (originals != 255)):
        raise DataError(f'Omniglot images from {origin} are not black and white '
                        '(values other than 0 and 255)')
      images.append(downsample_omniglot(originals))
  except tf.errors.OpError as e:
    raise DataError(f'Omniglot images from {origin} are not 105x105 PNGs '
                    f'({type(e).__name__}: {one_line(e.message)})') from None
  return np.concatenate(images)


def _omniglot_key(source, member):
  """The TFDS example key and label of one archive member, as the builder makes them.

  The builder walks `<top>/<alphabet>/character<NN>/<label>_<drawer>.png` and yields the
  key `f'{alphabet}_{NN - 1}_{file}'` with the label `int(<label>) - 1`, the character's
  number among all 1,623 (`_walk_omniglot_dir` in
  tensorflow_datasets/image_classification/omniglot.py).
  """
  parts = member.split('/')
  try:
    _, alphabet, character, filename = parts
    if not (character.startswith('character') and filename.endswith('.png')):
      raise ValueError
    character_id = int(character[len('character'):]) - 1
    label = int(filename.split('_')[0]) - 1
  except ValueError:
    raise DataError(f'{OMNIGLOT_ARCHIVES[source]} holds an unexpected file {member!r}; '
                    'expected <folder>/<alphabet>/characterNN/NNNN_NN.png') from None
  return f'{alphabet}_{character_id}_{filename}', label


def _read_omniglot_zip(source, path):
  """The PNGs of one builder split, read from its archive, in the builder's order.

  tensorflow-datasets stores the examples of a split sorted by the MD5 hash of their keys
  salted with the split name (`tensorflow_datasets.core.hashing.Hasher`); sorting the
  members the same way gives the order of the prepared TFDS data.

  Returns:
    keys: Python `list` of the TFDS example keys, in the builder's order.
    labels: `int64` array `[N]`, the character numbers (TFDS feature 'label').
    pngs: Python `list` of the PNG files' bytes, in the same order.
  """
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  _check_sha256(path, OMNIGLOT_ARCHIVE_SHA256[source],
                f'the {OMNIGLOT_ARCHIVES[source]} of the TFDS omniglot builder')
  try:
    with zipfile.ZipFile(path) as archive:
      members = [m for m in archive.namelist() if not m.endswith('/')]
      entries = [_omniglot_key(source, m) + (m,) for m in members]
      if len({m.split('/')[0] for m in members}) > 1:
        raise DataError(f'{path} has more than one top-level folder')
      hasher = hashing.Hasher(source)
      entries.sort(key=lambda entry: hasher.hash_key(entry[0]))
      pngs = [archive.read(member) for _, _, member in entries]
  except (OSError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f'Omniglot archive {path} is unreadable '
                    f'({type(e).__name__}: {one_line(e)})') from None
  keys = [key for key, _, _ in entries]
  labels = np.array([label for _, label, _ in entries], np.int64)
  return keys, labels, pngs


def _load_omniglot_tfds(builder, source, manual_dir=None):
  """Images and labels of one split of a TFDS `omniglot` builder, preparing it if needed.

  The builder stores each image's PNG file as it is (`tfds.features.Image` given a path
  keeps the file's bytes); they are read back undecoded (`tfds.decode.SkipDecoding`) in
  the stored order, then decoded and downsampled like the files of an archive.

  Args:
    builder: a `tfds.core.DatasetBuilder` of the `omniglot` data set.
    source: Python `str`, one of its splits.
    manual_dir: Python `str` or `None`, see `omniglot_source`.

  Returns:
    images, labels: as `omniglot_source`, writable.
  """
  tfds = import_tfds()
  if not builder.is_prepared():
    config = None if manual_dir is None else tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir))
    try:
      builder.download_and_prepare(download_config=config)
    except Exception as e:  # pylint: disable=broad-except
      # A download fails in many ways (no network, proxy, checksum): all are one line.
      raise DataError(f'the TFDS omniglot builder could not prepare its data in '
                      f'{builder.data_dir} ({type(e).__name__}: {one_line(e)[:300]}); '
                      'offline, set omniglot.zip_dir to a folder holding the builder\'s '
                      'zip files') from None
  dataset = builder.as_dataset(
      split=source, shuffle_files=False,
      read_config=tfds.ReadConfig(interleave_cycle_length=1),
      decoders={'image': tfds.decode.SkipDecoding()})
  pngs, labels = [], []
  for batch in dataset.map(lambda x: (x['image'], x['label'])).batch(_DECODE_BATCH):
    pngs.extend(batch[0].numpy().tolist())
    labels.append(batch[1].numpy())
  origin = f'the TFDS omniglot {source} split in {builder.data_dir}'
  _check_num_images(source, pngs, origin)
  return _decode_and_downsample(pngs, origin), np.concatenate(labels).astype(np.int64)


def _load_omniglot_zip(source, path):
  """Images and labels of one builder split, from its archive at `path`; writable."""
  _, labels, pngs = _read_omniglot_zip(source, path)
  _check_num_images(source, pngs, path)
  return _decode_and_downsample(pngs, path), labels


def _check_sha256(path, expected, what):
  """Raises a `DataError` unless the file at `path` has the SHA-256 digest `expected`."""
  digest = hashlib.sha256()
  try:
    with open(path, 'rb') as f:
      for block in iter(lambda: f.read(1 << 20), b''):
        digest.update(block)
  except OSError as e:
    raise DataError(f'Omniglot archive {path} is unreadable '
                    f'({type(e).__name__}: {one_line(e)})') from None
  if digest.hexdigest() != expected:
    raise DataError(f'{path} is not {what} (SHA-256 {digest.hexdigest()[:16]}..., '
                    f'expected {expected[:16]}...)')


def _load_omniglot_npz(source, path):
  """Images `[characters, 20, 28, 28, 1]` and labels `[characters]` of one NumPy archive
  (`OMNIGLOT_NPZ`), its digest checked; writable."""
  _check_sha256(path, OMNIGLOT_NPZ_SHA256[source], f'the Omniglot {OMNIGLOT_NPZ[source]}')
  try:
    with np.load(path, allow_pickle=False) as archive:
      paper = archive['images']
  except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f'Omniglot archive {path} is unreadable '
                    f'({type(e).__name__}: {one_line(e)})') from None
  # The digest fixes the shape: [characters, 20, 105, 105], True on the paper.
  originals = paper.reshape((-1,) + (OMNIGLOT_ORIGINAL_SIZE,) * 2)
  images = np.concatenate([
      downsample_omniglot(originals[i:i + _DECODE_BATCH].astype(np.uint8) * 255)
      for i in range(0, len(originals), _DECODE_BATCH)])
  num_characters = OMNIGLOT_NUM_CHARACTERS[source]
  labels = _FIRST_LABEL[source] + np.arange(num_characters, dtype=np.int64)
  return images.reshape(num_characters, OMNIGLOT_NUM_DRAWERS, *IMAGE_SHAPE), labels


def omniglot_npz_source(source, npz_dir):
  """All drawings of one NumPy archive, 28x28 and binarized by `downsample_omniglot`.

  The result is kept for the rest of the process: later calls return the same read-only
  arrays at once.

  Args:
    source: Python `str`, 'train' (images_background.npz) or 'test'
      (images_evaluation.npz).
    npz_dir: Python `str`, the folder holding the archive.

  Returns:
    images: read-only `uint8` array `[characters, 20, 28, 28, 1]`, values in {0, 1}, 1 on
      the strokes: `images[c, d]` is drawer d of character c.
    labels: read-only `int64` array `[characters]`, each character's TFDS label (its
      number among all 1,623, from 0): c for the background archive, 964 + c for the
      evaluation archive.

  Raises:
    DataError: if the archive is missing, unreadable, or not the one of `OMNIGLOT_NPZ`.
  """
  path = os.path.realpath(os.path.join(os.fspath(npz_dir), OMNIGLOT_NPZ[source]))
  try:
    stat = os.stat(path)
  except OSError:
    raise DataError(f'Omniglot archive {OMNIGLOT_NPZ[source]} not found in {npz_dir}') from None
  key = ('npz', path, stat.st_mtime_ns, stat.st_size, source)
  with _OMNIGLOT_CACHE_LOCK:
    if key not in _OMNIGLOT_CACHE:
      images, labels = _load_omniglot_npz(source, path)
      _OMNIGLOT_CACHE[key] = _read_only(images), _read_only(labels)
    return _OMNIGLOT_CACHE[key]


def omniglot_npz_dir(npz_dir=None):
  """The folder of the NumPy archives that `omniglot` reads, or `None`: the builder's.

  `npz_dir` if given, else `$BROKENELBO_OMNIGLOT_DIR` if set (empty: `None`), else
  `DEFAULT_OMNIGLOT_DIR` if it holds both archives, else `None`. A folder that is named
  (by `npz_dir` or the variable) must hold both, or this raises a `DataError`.
  """
  if npz_dir is None:
    variable = os.environ.get(OMNIGLOT_DIR_VARIABLE)
    if variable is None:
      default = all(os.path.isfile(os.path.join(DEFAULT_OMNIGLOT_DIR, name))
                    for name in OMNIGLOT_NPZ.values())
      return DEFAULT_OMNIGLOT_DIR if default else None
    if not variable:
      return None
    npz_dir, origin = variable, f'${OMNIGLOT_DIR_VARIABLE}'
  else:
    npz_dir, origin = os.fspath(npz_dir), 'omniglot.npz_dir'
  for name in OMNIGLOT_NPZ.values():
    if not os.path.isfile(os.path.join(npz_dir, name)):
      raise DataError(f'{origin} is {npz_dir!r}, which holds no {name} (the Omniglot '
                      'NumPy archives)')
  return npz_dir


def omniglot_npz_validation(num_characters, validation_fraction):
  """The validation drawers of the NumPy archives' split: `bool` `[num_characters, 20]`.

  Of each character, the first `round(validation_fraction * 20)` drawers of a permutation
  of its 20, the permutations drawn with NumPy's legacy `RandomState(0)` (frozen streams):
  the argsort of a `[num_characters, 20]` array of its uniforms.
  """
  num_validation = int(round(validation_fraction * OMNIGLOT_NUM_DRAWERS))
  uniforms = np.random.RandomState(_NPZ_DRAWER_SEED).random_sample(
      (num_characters, OMNIGLOT_NUM_DRAWERS))
  order = np.argsort(uniforms, axis=1, kind='stable')
  validation = np.zeros((num_characters, OMNIGLOT_NUM_DRAWERS), bool)
  np.put_along_axis(validation, order[:, :num_validation], True, axis=1)
  return validation


def _omniglot_npz(split, npz_dir, train_source, test_source, validation_fraction):
  """One split from the NumPy archives (the module docstring states the rule)."""
  if split == 'test':
    # The two archives hold disjoint characters: the test split is all of test_source.
    images, _ = omniglot_npz_source(test_source, npz_dir)
    chosen = np.ones(images.shape[:2], bool)
  else:
    images, _ = omniglot_npz_source(train_source, npz_dir)
    validation = omniglot_npz_validation(len(images), validation_fraction)
    chosen = validation if split == 'validation' else ~validation
    if not chosen.any():
      raise DataError(f'no Omniglot {split} images: omniglot.validation_fraction is '
                      f'{validation_fraction!r}, {validation.sum(axis=1)[0]} of 20 drawers')
  selected = images[chosen]  # (character, drawer) order.
  order = np.random.RandomState(_NPZ_ORDER_SEED).permutation(len(selected))
  return _read_only(selected[order])


def _check_num_images(source, pngs, origin):
  if len(pngs) != OMNIGLOT_NUM_IMAGES[source]:
    raise DataError(f'{origin} has {len(pngs)} images, expected '
                    f'{OMNIGLOT_NUM_IMAGES[source]}')


def omniglot_source(source, zip_dir=None, data_dir=None, manual_dir=None):
  """All images of one split of the TFDS `omniglot` builder, 28x28 and binarized.

  The images are in the order in which the builder stores them (sorted by the MD5 hash
  of their keys, salted with the split name: a fixed pseudo-random order), whichever the
  source, and preprocessed by `downsample_omniglot`. The result is kept for the rest of
  the process: later calls return the same read-only arrays at once.

  Args:
    source: Python `str`, a split of the builder: 'train' (images_background.zip, 19,280
      images), 'test' (images_evaluation.zip, 13,180), 'small1' (2,720) or 'small2'
      (3,120).
    zip_dir: Python `str`, a folder holding the builder's zip file for `source` (named as
      in `OMNIGLOT_ARCHIVES`; its SHA-256 is checked), read directly, without TFDS's
      download manager. Default `None`: use the TFDS builder.
    data_dir: Python `str`, the TFDS data folder, when `zip_dir` is `None`. The builder
      downloads its four zip files and prepares all four splits there the first time.
      Default `None`: TFDS's default, `$TFDS_DATA_DIR` or `~/tensorflow_datasets`.
    manual_dir: Python `str`, when `zip_dir` is `None` and the data are not yet
      prepared: a folder passed to the builder as `DownloadConfig(manual_dir=...)`. TFDS
      uses the zip files it finds there (under the names of `OMNIGLOT_ARCHIVES`, checked
      against their registered sizes and SHA-256) in place of downloads, and downloads
      those missing. Default `None`: download all four.

  Returns:
    images: read-only `uint8` array `[N, 28, 28, 1]`, values in {0, 1}, 1 on the strokes.
    labels: read-only `int64` array `[N]`, each image's character number in [0, 1623)
      (TFDS feature 'label', from the PNG's file name).

  Raises:
    DataError: if `source` is unknown, an archive is missing, unreadable or not the
      builder's, or the builder cannot prepare its data.
  """
  if source not in OMNIGLOT_ARCHIVES:
    raise DataError(f'unknown Omniglot source {source!r}; expected one of '
                    f'{", ".join(OMNIGLOT_ARCHIVES)} (the TFDS omniglot splits)')
  if zip_dir is not None:
    path = os.path.realpath(os.path.join(os.fspath(zip_dir), OMNIGLOT_ARCHIVES[source]))
    try:
      stat = os.stat(path)
    except OSError:
      raise DataError(f'Omniglot archive {OMNIGLOT_ARCHIVES[source]} not found in '
                      f'{zip_dir}') from None
    key = ('zip', path, stat.st_mtime_ns, stat.st_size, source)
  else:
    data_dir = None if data_dir is None else os.path.realpath(os.fspath(data_dir))
    key = ('tfds', data_dir or os.environ.get('TFDS_DATA_DIR'), source)
  with _OMNIGLOT_CACHE_LOCK:
    if key not in _OMNIGLOT_CACHE:
      if zip_dir is not None:
        images, labels = _load_omniglot_zip(source, path)
      else:
        builder = import_tfds().builder('omniglot', data_dir=data_dir)
        images, labels = _load_omniglot_tfds(builder, source, manual_dir)
      _OMNIGLOT_CACHE[key] = _read_only(images), _read_only(labels)
    return _OMNIGLOT_CACHE[key]


def _check_omniglot_arguments(split, train_source, test_source, validation_fraction):
  """Raises a `DataError` for an argument of `omniglot` that selects no images."""
  if split not in OMNIGLOT_SPLITS:
    raise DataError(f'unknown Omniglot split {split!r}; expected one of '
                    f'{", ".join(OMNIGLOT_SPLITS)}')
  if train_source == test_source:
    raise DataError(f'omniglot.train_source and omniglot.test_source are both '
                    f'{train_source!r}; the test images must be other images')


def _npz_folder(npz_dir, zip_dir, train_source, test_source):
  """The folder of the NumPy archives that `omniglot` reads, or `None` (another source)."""
  whole_set = train_source in OMNIGLOT_NPZ and test_source in OMNIGLOT_NPZ
  if npz_dir is not None and (zip_dir is not None or not whole_set):
    raise DataError(f'omniglot.npz_dir is bound, but so is omniglot.zip_dir or a small '
                    f'source ({train_source!r}, {test_source!r}): the NumPy archives hold '
                    "the sources 'train' and 'test' only; unbind one")
  return omniglot_npz_dir(npz_dir) if zip_dir is None and whole_set else None


def _train_or_validation(images, split, validation_fraction):
  """The 'train' or 'validation' part of the images of `train_source`: the last
  `round(validation_fraction * N)` images are 'validation'."""
  num_validation = int(round(validation_fraction * len(images)))
  num_train = len(images) - num_validation
  if split == 'validation' and not num_validation:
    raise DataError(f'no Omniglot validation images: omniglot.validation_fraction is '
                    f'{validation_fraction!r}')
  if not num_train:
    raise DataError(f'no Omniglot training images: omniglot.validation_fraction '
                    f'{validation_fraction!r} holds out all {len(images)}')
  return images[:num_train] if split == 'train' else images[num_train:]


@gin.configurable
@domains.checked(npz_dir=domains.optional(domains.NAME), zip_dir=domains.optional(domains.NAME),
                 data_dir=domains.optional(domains.NAME),
                 train_source=domains.one_of(*OMNIGLOT_NUM_IMAGES),
                 test_source=domains.one_of(*OMNIGLOT_NUM_IMAGES),
                 validation_fraction=domains.real(0, 1, high_open=True))
def omniglot(split, npz_dir=None, zip_dir=None, data_dir=None, train_source='train',
             test_source='test', validation_fraction=0.1):
  """Returns one split of 28x28 binarized Omniglot, rebuilt from the 105x105 originals.

  The module docstring says how the images are preprocessed and split, where they are
  read from, and how this differs from the `chardata.mat` of Burda et al. (2016) that the
  paper uses.

  Args:
    split: Python `str`, one of `OMNIGLOT_SPLITS`: 'train', 'validation' or 'test'.
    npz_dir: Python `str`, a folder holding the NumPy archives of the whole set
      (`OMNIGLOT_NPZ`), used when the sources are 'train' and 'test' and `zip_dir` is
      `None`. Default `None`: `$BROKENELBO_OMNIGLOT_DIR` if set (empty: none), else
      `../shared/data/omniglot` if it holds them, else none (see `omniglot_npz_dir`).
    zip_dir: Python `str`, a folder holding the builder's zip files (see
      `OMNIGLOT_ARCHIVES`; only those of `train_source` and `test_source` are needed),
      read without TFDS or a network. Default `None`: the NumPy archives if found, else
      the TFDS builder (see `data_dir`).
    data_dir: Python `str`, the TFDS data folder of the builder; the first use downloads
      the archives (about 19 MB) and prepares the data set there. Default `None`: TFDS's
      default folder.
    train_source: Python `str`, the builder split of 'train' and 'validation': 'train'
      (default), 'test', 'small1' or 'small2'.
    test_source: Python `str`, the builder split of 'test', another one. Default 'test'.
    validation_fraction: Python `float` in [0, 1), the part of `train_source` held out as
      'validation' (of the NumPy archives: that part of each character's 20 drawers,
      rounded). Default 0.1.

  Returns:
    images: read-only `np.ndarray`, `uint8`, shape `[N, 28, 28, 1]`, values in {0, 1}
      (1 on the strokes), the same for every call; each archive is read and preprocessed
      once per process (see `omniglot_source`, `omniglot_npz_source`).

  Raises:
    DataError: if an argument is invalid, a split would be empty, or the data cannot be
      read (a missing archive is named with its folder).
  """
  _check_omniglot_arguments(split, train_source, test_source, validation_fraction)
  folder = _npz_folder(npz_dir, zip_dir, train_source, test_source)
  if folder is not None:
    logging.info('Omniglot %s split: the NumPy archives in %s', split, folder)
    return _omniglot_npz(split, folder, train_source, test_source, validation_fraction)
  logging.info('Omniglot %s split: %s', split, f'the zip files in {zip_dir}' if zip_dir
               else f'the TFDS builder ({data_dir or "its default data folder"})')

  def load(source):
    return omniglot_source(source, zip_dir=zip_dir, data_dir=data_dir)

  if split == 'test':
    images, labels = load(test_source)
    _, train_labels = load(train_source)
    keep = ~np.isin(labels, train_labels)
    return images if keep.all() else _read_only(images[keep])
  images, _ = load(train_source)
  return _train_or_validation(images, split, validation_fraction)


# The binarization that a run's record states (`training.summaries.run_hparams`).
omniglot.binarization = 'threshold'
