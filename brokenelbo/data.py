"""The data sets (static binarized MNIST, 28x28 binarized Omniglot) and the input pipelines.

The data set of the paper (Alemi et al., 2018, Section 4) is the *static* binarization of
MNIST published by Larochelle & Murray (2011): every pixel was sampled once from a
Bernoulli with the grey level as its mean, and the result was fixed and shared as three
text files, `binarized_mnist_{train,valid,test}.amat` (50,000 / 10,000 / 10,000 images of
28x28 pixels in {0, 1}; one image per line, 784 integers separated by single spaces).

The original download address, which tensorflow-datasets' `binarized_mnist` builder still
uses, no longer answers. This package therefore carries its own copy,
`brokenelbo/assets/binarized_mnist.npz` (rows bit-packed with `np.packbits`, about
2.3 MB), built by `scripts/pack_mnist.py` from the copy in the public repository
`mingzhang-yin/ARM-gradient`. Whenever a split is loaded, it is written back out as the
original `.amat` text, in memory, and its SHA-256 digest must equal the one that
tensorflow-datasets records for that file (`checksums.tsv` of `binarized_mnist`), so that
the pixels, their order and the order of the images are all those of the original.

Three ways to get the images, all returning the same `uint8` array `[N, 28, 28, 1]`:

- `static_mnist(split)`: the embedded copy (fast; verified once per process and split).
- `tfds_binarized_mnist(split)`: the real TFDS `binarized_mnist` builder, fed the `.amat`
  files through a `manual_dir` (see its docstring), then put back in the original order.
- `write_amat_files(directory)`: the original text files, for any other tool.

Omniglot (issue 6), which the paper also reports on, is rebuilt from the 105x105 drawings
of the TFDS `omniglot` builder, downloaded by TFDS or read from its zip files in a folder:
`omniglot(split)` returns the same kind of array (see its docstring for the exact
preprocessing and splits; `configs/omniglot.gin` selects it for training).

`make_dataset` turns such an array into batches of `float32` for training.

#### Examples

```python
from brokenelbo import data

train = data.static_mnist('train')          # uint8, shape (50000, 28, 28, 1)
ds = data.make_dataset(train, batch_size=100, shuffle=True, repeat=True, seed=1)
x = next(iter(ds))                          # float32, shape (100, 28, 28, 1), {0., 1.}
```

#### References

[1]: Hugo Larochelle and Iain Murray. The Neural Autoregressive Distribution Estimator.
     In _AISTATS_, 2011. http://proceedings.mlr.press/v15/larochelle11a.html

[2]: Alexander A. Alemi, Ben Poole, Ian Fischer, Joshua V. Dillon, Rif A. Saurous and
     Kevin Murphy. Fixing a Broken ELBO. In _ICML_, 2018. https://arxiv.org/abs/1711.00464
"""

import hashlib
import os
import tempfile
import threading
import zipfile
import zlib

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import cli

# Split names, as in tensorflow-datasets (the original file names say 'valid').
SPLITS = ('train', 'validation', 'test')

# Number of images in each split (Larochelle & Murray, 2011).
NUM_EXAMPLES = {'train': 50000, 'validation': 10000, 'test': 10000}

IMAGE_SHAPE = (28, 28, 1)
NUM_PIXELS = 28 * 28

# Names of the original text files; TFDS looks for exactly these names in a `manual_dir`.
AMAT_FILENAMES = {
    'train': 'binarized_mnist_train.amat',
    'validation': 'binarized_mnist_valid.amat',
    'test': 'binarized_mnist_test.amat',
}

# SHA-256 of the original `.amat` files, as recorded by tensorflow-datasets
# (tensorflow_datasets/datasets/binarized_mnist/checksums.tsv); sizes are 2 bytes a pixel.
AMAT_SHA256 = {
    'train': 'ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d',
    'validation': '1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2',
    'test': 'e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c',
}

# The embedded copy: one `np.packbits(X, axis=1)` array `(N, 98)` per split name.
ASSET_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'assets',
                          'binarized_mnist.npz')

# Verified splits of this process: (real path, mtime_ns, size, split) -> read-only array.
_CACHE = {}
_CACHE_LOCK = threading.Lock()


class DataError(cli.UserError):
  """The data are missing, unreadable, or not the published ones: one line, exit 2."""


def _check_split(split):
  if split not in SPLITS:
    raise DataError(f'unknown binarized MNIST split {split!r}; '
                    f'expected one of {", ".join(SPLITS)}')


def _one_line(text):
  return ' '.join(str(text).split())


def _amat_buffer(images):
  """Returns the `.amat` text of `images` as a `uint8` array of its bytes.

  Each image becomes one line: its 784 pixels, row-major, as the characters '0'/'1',
  separated by single spaces, with '\\n' after the last one. Every pixel therefore
  takes two bytes (digit, then space or newline), which makes the text a simple
  interleaving, built without Python loops.

  Args:
    images: `uint8` array of shape `[N, ...]` with 784 values in {0, 1} per image.

  Returns:
    buffer: C-contiguous `uint8` array of shape `[N, 784, 2]` holding the file's bytes.
  """
  flat = np.asarray(images).reshape(len(images), NUM_PIXELS)
  buffer = np.empty(flat.shape + (2,), np.uint8)
  np.add(flat, ord('0'), out=buffer[:, :, 0], casting='unsafe')
  buffer[:, :, 1] = ord(' ')
  buffer[:, -1, 1] = ord('\n')
  return buffer


def amat_sha256(images):
  """SHA-256 hex digest of `images` written out as an original `.amat` text file.

  Args:
    images: `uint8` array of shape `[N, 28, 28, 1]` or `[N, 784]`, values in {0, 1}.

  Returns:
    digest: Python `str`, 64 lowercase hex digits.
  """
  return hashlib.sha256(_amat_buffer(images)).hexdigest()


def clear_cache():
  """Forgets the splits loaded so far (MNIST and Omniglot): the next load reads again."""
  with _CACHE_LOCK:
    _CACHE.clear()
    _OMNIGLOT_CACHE.clear()


def _load_packed(path, split):
  """Reads one split's packed array from an `.npz`; any failure is a `DataError`."""
  try:
    with np.load(path, allow_pickle=False) as archive:
      if split not in archive.files:
        raise DataError(f'binarized MNIST asset {path} has no {split!r} split; '
                        'regenerate it with scripts/pack_mnist.py')
      return archive[split]
  except FileNotFoundError:
    raise DataError(f'binarized MNIST asset not found: {path}; '
                    'regenerate it with scripts/pack_mnist.py') from None
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    kind = 'zlib.error' if isinstance(e, zlib.error) else type(e).__name__
    raise DataError(f'binarized MNIST asset {path} is unreadable '
                    f'({kind}: {_one_line(e)}); '
                    'regenerate it with scripts/pack_mnist.py') from None


def _verify(images, split, source):
  """Raises `DataError` unless `images` are the published `split`, in order."""
  digest = amat_sha256(images)
  if digest != AMAT_SHA256[split]:
    raise DataError(f'binarized MNIST {split} split from {source} fails its SHA-256 check '
                    f'(got {digest[:16]}..., expected {AMAT_SHA256[split][:16]}...)')


@gin.configurable
def static_mnist(split, path=None):
  """Returns one split of the static binarized MNIST, verified against its digest.

  The images are those of Larochelle & Murray (2011), in their published order, from
  the copy embedded in this package (see the module docstring). The first call for a
  split in a process unpacks it and checks the SHA-256 digest of its original `.amat`
  text (about 0.3 s for 'train', 0.03 s for the others); later calls return the same
  array at once.

  Args:
    split: Python `str`, one of `SPLITS`: 'train' (50,000 images), 'validation'
      (10,000) or 'test' (10,000).
    path: Python `str`, an `.npz` in the format written by `scripts/pack_mnist.py`
      (one `np.packbits(X, axis=1)` array per split). Default `None`: the embedded
      asset, `ASSET_PATH`.

  Returns:
    images: read-only `np.ndarray`, `uint8`, shape `[N, 28, 28, 1]`, values in {0, 1};
      shared by all callers in this process (use `.copy()` to modify it).

  Raises:
    DataError: if `split` is unknown, or the file is missing, unreadable, malformed or
      fails the SHA-256 check.
  """
  _check_split(split)
  path = os.path.realpath(ASSET_PATH if path is None else os.fspath(path))
  try:
    stat = os.stat(path)
  except OSError:
    raise DataError(f'binarized MNIST asset not found: {path}; '
                    'regenerate it with scripts/pack_mnist.py') from None
  key = (path, stat.st_mtime_ns, stat.st_size, split)
  with _CACHE_LOCK:
    if key in _CACHE:
      return _CACHE[key]
    packed = _load_packed(path, split)
    expected_shape = (NUM_EXAMPLES[split], NUM_PIXELS // 8)
    if packed.dtype != np.uint8 or packed.shape != expected_shape:
      raise DataError(f'binarized MNIST asset {path}: {split} split is {packed.dtype} '
                      f'{packed.shape}, expected uint8 {expected_shape}')
    images = np.unpackbits(packed, axis=1).reshape((-1,) + IMAGE_SHAPE)
    _verify(images, split, path)
    images.setflags(write=False)
    _CACHE[key] = images
    return images


def write_amat_files(directory):
  """Writes the original `binarized_mnist_{train,valid,test}.amat` text files.

  The files are regenerated from the embedded, verified copy and are byte-identical to
  those of Larochelle & Murray (2011) (78,400,000 + 15,680,000 + 15,680,000 bytes).
  Each is written under a temporary name and then renamed, so that a file bearing the
  final name is always complete.

  Args:
    directory: Python `str`, folder to write into; created if missing. Existing files
      of the same names are replaced.

  Raises:
    DataError: if the embedded copy is missing or fails its check.
  """
  os.makedirs(directory, exist_ok=True)
  for split in SPLITS:
    buffer = _amat_buffer(static_mnist(split))
    target = os.path.join(directory, AMAT_FILENAMES[split])
    tmp = target + '.tmp'
    with open(tmp, 'wb') as f:
      f.write(buffer.data)
    os.replace(tmp, target)


def _import_tfds():
  """Imports and returns `tensorflow_datasets`, or raises a one-line `DataError`."""
  try:
    # tensorflow-datasets 4.9.10 imports `importlib_resources` when it builds, yet only
    # declares it as a dependency for Python < 3.9.
    import importlib_resources  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise DataError('the TFDS path needs the importlib_resources package, which '
                    'tensorflow-datasets uses without declaring it: '
                    'pip install importlib_resources') from None
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  return tfds


@gin.configurable
def tfds_binarized_mnist(split, data_dir=None):
  """Returns one split of binarized MNIST as built by the TFDS `binarized_mnist` builder.

  This path exercises tensorflow-datasets' own builder (version 1.0.0), whose download
  address (www.cs.toronto.edu/~larocheh/...) no longer answers. When the data set is not
  yet prepared in `data_dir`, the three `.amat` files are written (by
  `write_amat_files`) to a temporary folder passed as
  `tfds.download.DownloadConfig(manual_dir=...)`: for each URL, TFDS's download manager
  looks in `manual_dir` for the file name registered next to that URL in the builder's
  `checksums.tsv` (here the URL's basename), uses it in place of a download, and checks
  its size and SHA-256 against the registered ones. The builder then parses the text
  with `np.loadtxt` and writes all three splits as TFRecords (about 30 s on 2 cores).

  TFDS stores the examples of a split sorted by the MD5 hash of their keys (the line
  numbers) salted with the split name. This function undoes that permutation with
  TFDS's own `Hasher`, so the result is in the published order, and checks it against
  the published SHA-256 digest like `static_mnist` does.

  Args:
    split: Python `str`, one of `SPLITS` ('train', 'validation', 'test'), which are
      also TFDS's split names.
    data_dir: Python `str`, the TFDS data folder (prepared data are kept and reused
      there). Default `None`: TFDS's default, `$TFDS_DATA_DIR` or
      `~/tensorflow_datasets`.

  Returns:
    images: `np.ndarray`, `uint8`, shape `[N, 28, 28, 1]`, values in {0, 1}, identical
      to `static_mnist(split)`.

  Raises:
    DataError: if `split` is unknown, or the TFDS data are not the published ones.
  """
  _check_split(split)
  tfds = _import_tfds()
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top

  builder = tfds.builder('binarized_mnist', data_dir=data_dir)
  if not builder.is_prepared():
    with tempfile.TemporaryDirectory(prefix='binarized_mnist_manual_') as manual_dir:
      write_amat_files(manual_dir)
      builder.download_and_prepare(
          download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))

  # Read the one or more shards in order, one at a time, without shuffling.
  dataset = builder.as_dataset(
      split=split, batch_size=-1, shuffle_files=False,
      read_config=tfds.ReadConfig(interleave_cycle_length=1))
  stored = tfds.as_numpy(dataset)['image']
  num_examples = NUM_EXAMPLES[split]
  if stored.dtype != np.uint8 or stored.shape != (num_examples,) + IMAGE_SHAPE:
    raise DataError(f'TFDS binarized_mnist {split} split in {builder.data_dir} is '
                    f'{stored.dtype} {stored.shape}, expected uint8 '
                    f'{(num_examples,) + IMAGE_SHAPE}')

  # Example i of `stored` is line keys[i] of the original file.
  hasher = hashing.Hasher(split)
  keys = np.array(sorted(range(num_examples), key=hasher.hash_key))
  images = np.empty_like(stored)
  images[keys] = stored
  _verify(images, split, f'TFDS {builder.data_dir}')
  return images


# ---------------------------------------------------------------------------------------
# Omniglot, 28x28 and binarized, rebuilt from the 105x105 originals.

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
                    f'({type(e).__name__}: {_one_line(e.message)})') from None
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
  name = OMNIGLOT_ARCHIVES[source]
  digest = hashlib.sha256()
  try:
    with open(path, 'rb') as f:
      for block in iter(lambda: f.read(1 << 20), b''):
        digest.update(block)
    if digest.hexdigest() != OMNIGLOT_ARCHIVE_SHA256[source]:
      raise DataError(f'{path} is not the {name} of the TFDS omniglot builder '
                      f'(SHA-256 {digest.hexdigest()[:16]}..., expected '
                      f'{OMNIGLOT_ARCHIVE_SHA256[source][:16]}...)')
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
                    f'({type(e).__name__}: {_one_line(e)})') from None
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
  tfds = _import_tfds()
  if not builder.is_prepared():
    config = None if manual_dir is None else tfds.download.DownloadConfig(
        manual_dir=os.fspath(manual_dir))
    try:
      builder.download_and_prepare(download_config=config)
    except Exception as e:  # pylint: disable=broad-except
      # A download fails in many ways (no network, proxy, checksum): all are one line.
      raise DataError(f'the TFDS omniglot builder could not prepare its data in '
                      f'{builder.data_dir} ({type(e).__name__}: {_one_line(e)[:300]}); '
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
  with _CACHE_LOCK:
    if key not in _OMNIGLOT_CACHE:
      if zip_dir is not None:
        images, labels = _load_omniglot_zip(source, path)
      else:
        builder = _import_tfds().builder('omniglot', data_dir=data_dir)
        images, labels = _load_omniglot_tfds(builder, source, manual_dir)
      _OMNIGLOT_CACHE[key] = _read_only(images), _read_only(labels)
    return _OMNIGLOT_CACHE[key]


@gin.configurable
def omniglot(split, zip_dir=None, data_dir=None, train_source='train', test_source='test',
             validation_fraction=0.1):
  """Returns one split of 28x28 binarized Omniglot, rebuilt from the 105x105 originals.

  Alemi et al. (2018) use the 28x28 Omniglot of Burda et al. (2016), `chardata.mat`
  (24,345 training and 8,070 test images in grey levels, downsampled by Lake et al.).
  That file is not available here, so this is a reconstruction from the original
  drawings of Lake et al. (2015), as packaged by the tensorflow-datasets `omniglot`
  builder; its splits and its pixels are not those of `chardata.mat`.

  Preprocessing, in `downsample_omniglot`: each 105x105 1-bit PNG (0 on the strokes, 255
  on the paper) is inverted (stroke = 1), resized to 28x28 by area (box filter: each
  output pixel is the stroke fraction of its 3.75x3.75 input square, computed exactly in
  1/225ths; `tf.image.resize(method='area')` gives the same values in float32), and
  thresholded: 1 where the fraction exceeds 0.5. The threshold is deterministic (no seed)
  and tie-free (no fraction equals 0.5). Measured on small1, it keeps the amount of
  stroke (7.59% of the pixels are 1, for a mean stroke fraction of 7.63%) and the
  drawings' connectivity (1.12 8-connected pieces per image, 1.15 in the originals),
  whereas sampling each pixel from a Bernoulli with the fraction as its mean, as is
  done with `chardata.mat`'s grey levels, breaks the thin 28x28 strokes apart (2.06
  pieces per image).

  Splits: 'train' and 'validation' come from the builder split `train_source`, 'test'
  from `test_source`. In the builder's order (a fixed pseudo-random permutation, see
  `omniglot_source`) the last `round(validation_fraction * N)` images of `train_source`
  are 'validation' and the others 'train'. 'test' holds the images of `test_source` whose
  character (TFDS 'label') is not in `train_source`:

  - full data, the default (`'train'`/`'test'` = images_background/images_evaluation,
    disjoint alphabets): train 17,352, validation 1,928, test 13,180;
  - the two small archives (`'small1'`/`'small2'`, for tests and offline work): small2
    shares its Greek and Latin characters, 1,000 identical images, with small1, and they
    leave its test split: train 2,448, validation 272, test 2,120.

  Args:
    split: Python `str`, one of `OMNIGLOT_SPLITS`: 'train', 'validation' or 'test'.
    zip_dir: Python `str`, a folder holding the builder's zip files (see
      `OMNIGLOT_ARCHIVES`; only those of `train_source` and `test_source` are needed),
      read without TFDS or a network. Default `None`: the TFDS builder (see `data_dir`).
    data_dir: Python `str`, the TFDS data folder, used when `zip_dir` is `None`; the first
      use downloads the archives (about 19 MB) and prepares the data set there. Default
      `None`: TFDS's default folder.
    train_source: Python `str`, the builder split of 'train' and 'validation': 'train'
      (default), 'test', 'small1' or 'small2'.
    test_source: Python `str`, the builder split of 'test', another one. Default 'test'.
    validation_fraction: Python `float` in [0, 1), the part of `train_source` held out as
      'validation'. Default 0.1.

  Returns:
    images: read-only `np.ndarray`, `uint8`, shape `[N, 28, 28, 1]`, values in {0, 1}
      (1 on the strokes), the same for every call; each archive is read and preprocessed
      once per process (see `omniglot_source`).

  Raises:
    DataError: if an argument is invalid, a split would be empty, or the data cannot be
      read (a missing archive is named with its folder).

  #### References

  [1]: Brenden M. Lake, Ruslan Salakhutdinov and Joshua B. Tenenbaum. Human-level
       concept learning through probabilistic program induction. _Science_,
       350(6266):1332-1338, 2015.

  [2]: Yuri Burda, Roger Grosse and Ruslan Salakhutdinov. Importance Weighted
       Autoencoders. In _ICLR_, 2016. https://arxiv.org/abs/1509.00519
  """
  if split not in OMNIGLOT_SPLITS:
    raise DataError(f'unknown Omniglot split {split!r}; expected one of '
                    f'{", ".join(OMNIGLOT_SPLITS)}')
  for name, source in (('train_source', train_source), ('test_source', test_source)):
    if source not in OMNIGLOT_ARCHIVES:
      raise DataError(f'omniglot.{name} = {source!r} is not a TFDS omniglot split; '
                      f'expected one of {", ".join(OMNIGLOT_ARCHIVES)}')
  if train_source == test_source:
    raise DataError(f'omniglot.train_source and omniglot.test_source are both '
                    f'{train_source!r}; the test images must be other images')
  if isinstance(validation_fraction, bool) or not (
      isinstance(validation_fraction, (int, float)) and 0 <= validation_fraction < 1):
    raise DataError(f'omniglot.validation_fraction must be in [0, 1), '
                    f'got {validation_fraction!r}')

  def load(source):
    return omniglot_source(source, zip_dir=zip_dir, data_dir=data_dir)

  if split == 'test':
    images, labels = load(test_source)
    _, train_labels = load(train_source)
    keep = ~np.isin(labels, train_labels)
    return images if keep.all() else _read_only(images[keep])
  images, _ = load(train_source)
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
def make_dataset(images, batch_size, shuffle=False, repeat=False, seed=0,
                 drop_remainder=False):
  """Returns a `tf.data.Dataset` of `float32` batches of `images`.

  The array is held once as a constant; the pipeline shuffles and batches integer
  indices, then gathers and casts a whole batch at a time, so its cost per batch is
  one `tf.gather` and one `tf.cast`. Every epoch visits each image exactly once (the
  shuffle buffer is the whole array); with `shuffle=True` each epoch has a new order,
  the sequence of orders being fixed by `seed` (and by TF's global seed, if one is
  set). Epochs are batched separately, so with `drop_remainder=False` each epoch ends
  with a smaller batch unless `batch_size` divides the number of images.

  Args:
    images: `np.ndarray` of shape `[N, ...]` (e.g. `uint8` `[N, 28, 28, 1]` from
      `static_mnist`).
    batch_size: Python `int`, images per batch.
    shuffle: Python `bool`, reshuffle the images at every epoch. Default `False`.
    repeat: Python `bool`, repeat the epochs forever. Default `False`: one epoch.
    seed: Python `int`, seed of the shuffle. Default `0`.
    drop_remainder: Python `bool`, drop each epoch's last batch if smaller than
      `batch_size`. Default `False`.

  Returns:
    dataset: `tf.data.Dataset` of `float32` tensors of shape `[B, ...]` (e.g.
      `[B, 28, 28, 1]`), with `B = batch_size` except perhaps for each epoch's last
      batch; values are those of `images` (in {0., 1.} for binarized MNIST).

  Raises:
    UserError: if `batch_size` is not a positive integer or `images` is empty.
  """
  images = np.asarray(images)
  if images.ndim < 1 or len(images) == 0:
    raise cli.UserError(f'make_dataset: no images (shape {images.shape})')
  if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or (
      batch_size < 1):
    raise cli.UserError(f'make_dataset: batch_size must be a positive integer, '
                        f'got {batch_size!r}')
  num_images = len(images)
  table = tf.constant(images)

  def gather(indices):
    return tf.cast(tf.gather(table, indices), tf.float32)

  dataset = tf.data.Dataset.range(num_images)
  if shuffle:
    dataset = dataset.shuffle(num_images, seed=seed, reshuffle_each_iteration=True)
  dataset = dataset.batch(int(batch_size), drop_remainder=drop_remainder)
  dataset = dataset.map(gather, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  if repeat:
    dataset = dataset.repeat()
  return dataset.prefetch(tf.data.AUTOTUNE)


def train_dataset(images, batch_size, seed, start_step=0):
  """Infinite batches of float32 images; epoch e is a stateless permutation by (seed, e).

  Batch k of the stream is the same whatever `start_step` the stream starts from, so that a
  resumed run sees exactly the batches it would have seen.
  """
  num_examples = images.shape[0]
  steps_per_epoch = num_examples // batch_size
  images = tf.constant(images)

  def batch_at(step):
    epoch, position = step // steps_per_epoch, step % steps_per_epoch
    order = tf.random.experimental.stateless_shuffle(
        tf.range(num_examples), seed=tf.stack([tf.cast(seed, tf.int64), epoch]))
    indices = order[position * batch_size:(position + 1) * batch_size]
    return tf.cast(tf.gather(images, indices), tf.float32)

  return (tf.data.Dataset.range(start_step, 2**62)
          .map(batch_at, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .prefetch(tf.data.AUTOTUNE))
