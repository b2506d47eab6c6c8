"""Static binarized MNIST: the embedded copy, its digest check, and the TFDS path.

The data set of the paper (Alemi et al. [2], Section 4) is the *static* binarization of
MNIST of Larochelle & Murray [1]: every pixel sampled once from a Bernoulli with the grey
level as its mean, fixed and published as `binarized_mnist_{train,valid,test}.amat` (50,000
/ 10,000 / 10,000 images of 28x28 pixels in {0, 1}, one per line). Their address, which
TFDS's `binarized_mnist` builder still uses, no longer answers, so the package carries
`data/assets/binarized_mnist.npz` (rows bit-packed with `np.packbits`, 2.3 MB; built by
`scripts/pack_mnist.py` from the copy in the public repository
`mingzhang-yin/ARM-gradient`). A split, once loaded, is written back out as `.amat` text in
memory, whose SHA-256 must be TFDS's record of that file (`checksums.tsv`): the pixels and
both orders are the original ones.

The same `uint8` array `[N, 28, 28, 1]`, three ways: `static_mnist(split)`, the embedded
copy (verified once per process and split); `tfds_binarized_mnist(split)`, the real TFDS
builder fed the `.amat` files through a `manual_dir`; `write_amat_files(directory)`, the
original text files (`omniglot.omniglot(split)` returns the same kind of array). Batches:

    train = data.static_mnist('train')          # uint8, shape (50000, 28, 28, 1)
    x = next(iter(data.make_dataset(train, batch_size=100, shuffle=True, repeat=True,
                                    seed=1)))   # float32, shape (100, 28, 28, 1), {0., 1.}

[1]: Hugo Larochelle and Iain Murray. The Neural Autoregressive Distribution Estimator.
     In _AISTATS_, 2011. http://proceedings.mlr.press/v15/larochelle11a.html
[2]: Alemi, Poole, Fischer, Dillon, Saurous, Murphy. Fixing a Broken ELBO. In _ICML_, 2018.
"""

import hashlib
import os
import tempfile
import threading
import zipfile
import zlib

import gin
import numpy as np

from brokenelbo import domains
from brokenelbo import errors


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


class DataError(errors.UserError):
  """The data are missing, unreadable, or not the published ones: one line, exit 2."""


def _check_split(split):
  if split not in SPLITS:
    raise DataError(f'unknown binarized MNIST split {split!r}; '
                    f'expected one of {", ".join(SPLITS)}')


def one_line(text):
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
  """Forgets the splits loaded so far: the next load reads and verifies them again."""
  with _CACHE_LOCK:
    _CACHE.clear()


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
                    f'({kind}: {one_line(e)}); '
                    'regenerate it with scripts/pack_mnist.py') from None


def _verify(images, split, source):
  """Raises `DataError` unless `images` are the published `split`, in order."""
  digest = amat_sha256(images)
  if digest != AMAT_SHA256[split]:
    raise DataError(f'binarized MNIST {split} split from {source} fails its SHA-256 check '
                    f'(got {digest[:16]}..., expected {AMAT_SHA256[split][:16]}...)')


@gin.configurable
@domains.checked(path=domains.optional(domains.NAME))
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


def import_tfds():
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


def _prepare_from_amat_files(tfds, builder):
  """Prepares the TFDS builder from the `.amat` files, written to a temporary `manual_dir`
  (see `tfds_binarized_mnist`)."""
  with tempfile.TemporaryDirectory(prefix='binarized_mnist_manual_') as manual_dir:
    write_amat_files(manual_dir)
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))


def _in_published_order(stored, split):
  """Undoes TFDS's order of a split: example i of `stored` is line keys[i] of the file."""
  from tensorflow_datasets.core import hashing  # pylint: disable=g-import-not-at-top
  hasher = hashing.Hasher(split)
  keys = np.array(sorted(range(NUM_EXAMPLES[split]), key=hasher.hash_key))
  images = np.empty_like(stored)
  images[keys] = stored
  return images


@gin.configurable
@domains.checked(data_dir=domains.optional(domains.NAME))
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
  tfds = import_tfds()
  builder = tfds.builder('binarized_mnist', data_dir=data_dir)
  if not builder.is_prepared():
    _prepare_from_amat_files(tfds, builder)

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
  images = _in_published_order(stored, split)
  _verify(images, split, f'TFDS {builder.data_dir}')
  return images
