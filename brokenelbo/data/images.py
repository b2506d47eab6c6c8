"""Your own images as a data set: a NumPy file, or a TFDS data set by name.

`train.dataset = @ImageFile()` (bind `ImageFile.path`) or `@TFDSImages()` (bind
`TFDSImages.name`) is a data set like `mnist.static_mnist`: `dataset(split)` returns
read-only `uint8` images `[N, H, W, C]` in {0, 1}, here of any height and width, with C = 1,
3 or 4 channels (grey, RGB, RGBA: what TensorBoard shows). `configs/images.gin` and
`configs/tfds_images.gin` also bind the networks' `image_shape` to the data's
(`example_shape`).

Reading. Images are `bool`, `uint8` (read as {0, 1} when no value exceeds 1, else as grey
levels v / 255) or floating point grey levels in [0, 1], shaped `[N, H, W]` (one channel)
or `[N, H, W, C]`. Anything else (a missing or unreadable file, another dtype or shape, a
NaN, a value outside [0, 1], an empty split) is a `DataError` naming the file and what is
wrong: one line and exit status 2 from a command line, before any training.

Splits. An `.npz` holding arrays 'train' and 'test' is split by the file (other arrays in
it are ignored); without 'validation', the validation split is held out of 'train' by the
rule. A `.npy`, or an `.npz` of one array, is split by the rule alone. The rule: a
permutation of the N images by `np.random.RandomState(split_seed)` (NumPy's legacy
generator, whose streams are frozen); its first `round(test_fraction * N)` are 'test', the
next `round(validation_fraction * N)` 'validation', the others 'train', each split in the
file's order. A TFDS data set is split by its own split names (`train_split`,
`validation_split`, `test_split`, which may be TFDS slices such as 'train[:90%]'), the
validation split by the rule when `validation_split` is `None`.

Binarization, of a grey level p (binary images are the same under all three):

- 'threshold': x = 1 where p > `threshold` (default 0.5); no randomness.
- 'bernoulli': x ~ Bernoulli(p), one draw per split fixed by (`seed`, split): a static
  binarization, like the MNIST of Larochelle & Murray (2011) [2].
- 'dynamic': each training batch a fresh draw x ~ Bernoulli(p), made in the input pipeline
  (`pipeline.train_dataset`, seeded by the run's seed and step: new draws every epoch, the
  same for the same seed), as for the dynamically binarized MNIST of Tomczak & Welling
  (2018) [1]; `dataset(split)`, which evaluation reads, is the fixed draw of 'bernoulli',
  so that every evaluation of a split sees the same images. `dataset.training_images()`
  gives the trainer the grey levels to draw from.

The binarization is a binding, so a run's `config.gin` holds it, and its record states it
(`run.json`'s `hparams['binarization']`, `training.summaries.run_hparams`).

#### Examples

```python
from brokenelbo.data import images

digits = images.ImageFile('digits.npz', binarization='dynamic')
test = digits('test')             # uint8 [N, H, W, C] in {0, 1}, a fixed draw
train = digits.training_images()  # pipeline.DynamicBinarization of the grey levels
```

#### References

[1]: Tomczak, Welling. VAE with a VampPrior. _AISTATS_, 2018.
[2]: Larochelle, Murray. The Neural Autoregressive Distribution Estimator. _AISTATS_, 2011.
"""

import os
import threading
import zipfile
import zlib

import gin
import numpy as np

from brokenelbo import domains
from brokenelbo.data import pipeline
# pylint: disable-next=g-importing-member
from brokenelbo.data.mnist import DataError, import_tfds, one_line

SPLITS = ('train', 'validation', 'test')
BINARIZATIONS = ('threshold', 'bernoulli', 'dynamic')
CHANNELS = (1, 3, 4)

# Grey levels of each source read so far: source key -> {split: float32 array}.
_CACHE = {}
_CACHE_LOCK = threading.Lock()


def clear_cache():
  """Forgets the files and data sets read so far: the next use reads them again."""
  with _CACHE_LOCK:
    _CACHE.clear()


def grey_levels(array, origin):
  """The grey levels in [0, 1] of an array of images, or a `DataError` naming `origin`.

  Args:
    array: `np.ndarray` `[N, H, W]` or `[N, H, W, C]` (C in `CHANNELS`), `bool`, `uint8`
      (values in {0, 1}, else in [0, 255], read as v / 255) or floating point in [0, 1].
    origin: Python `str`, where the array comes from, for the error messages.

  Returns:
    `float32` array `[N, H, W, C]`.
  """
  array = np.asarray(array)
  if array.dtype != np.bool_ and array.dtype != np.uint8 and array.dtype.kind != 'f':
    raise DataError(f'{origin} holds {array.dtype} values; expected images of bool, uint8 '
                    'or floating point grey levels in [0, 1]')
  if array.ndim == 3:
    array = array[..., np.newaxis]
  if array.ndim != 4 or array.shape[-1] not in CHANNELS or 0 in array.shape[1:]:
    raise DataError(f'{origin} has shape {array.shape}; expected images [N, H, W] or '
                    f'[N, H, W, C] with C in {CHANNELS}')
  if not len(array):
    raise DataError(f'{origin} is empty (shape {array.shape}): no images')
  if array.dtype.kind == 'f':
    finite = np.isfinite(array)
    if not finite.all():
      nans = int(np.isnan(array).sum())
      raise DataError(f'{origin} holds {nans} NaN and {array.size - finite.sum() - nans} '
                      'infinite values; expected grey levels in [0, 1]')
    low, high = float(array.min()), float(array.max())
    if low < 0 or high > 1:
      raise DataError(f'{origin} holds values in [{low:g}, {high:g}], outside [0, 1]')
  elif array.dtype == np.uint8 and array.max() > 1:
    return array.astype(np.float32) / np.float32(255.)
  return array.astype(np.float32)


def check_examples(examples, origin):
  """Raises a `DataError` naming `origin` unless `examples` are a non-empty array of finite
  numbers, and when they are images (`[N, H, W, C]`), with values in [0, 1]: what every run
  checks of its data, whatever the data set (a `DynamicBinarization`: its grey levels)."""
  if isinstance(examples, pipeline.DynamicBinarization):
    examples = examples.probabilities
  array = np.asarray(examples)
  if array.ndim < 1 or not len(array):
    raise DataError(f'{origin} is empty (shape {array.shape}): no examples')
  if array.dtype == np.bool_ or array.dtype == np.uint8:
    low, high = int(array.min()), int(array.max())  # Nothing to be infinite.
  elif array.dtype.kind in 'iuf':
    if not np.isfinite(array).all():
      raise DataError(f'{origin} holds {int(np.isnan(array).sum())} NaN and '
                      f'{int(np.isinf(array).sum())} infinite values')
    low, high = float(array.min()), float(array.max())
  else:
    raise DataError(f'{origin} holds {array.dtype} values, not numbers')
  if array.ndim == 4 and (low < 0 or high > 1):
    raise DataError(f'{origin} holds values in [{low:g}, {high:g}], outside [0, 1]')


def binarize(grey, binarization, threshold, seed, split):
  """`uint8` images in {0, 1} from grey levels: 'threshold' (p > threshold), else one
  Bernoulli draw fixed by (seed, split) (`np.random.RandomState([seed, split index])`)."""
  if binarization == 'threshold':
    return (grey > threshold).astype(np.uint8)
  uniforms = np.random.RandomState([seed, SPLITS.index(split)]).random_sample(grey.shape)
  return (uniforms < grey).astype(np.uint8)


def _held_out(grey, fractions, split_seed):
  """Splits `grey` by the rule: `{split: indices}` of each split of `fractions`
  (`{'test': f, 'validation': f}`, in that order) and of 'train', each sorted."""
  order = np.random.RandomState(split_seed).permutation(len(grey))
  indices, start = {}, 0
  for split, fraction in fractions.items():
    count = int(round(fraction * len(grey)))
    indices[split] = np.sort(order[start:start + count])
    start += count
  indices['train'] = np.sort(order[start:])
  return indices


def _by_rule(splits, fractions, split_seed, origin, configurable):
  """`splits` (`{split: grey}`, 'train' among them) with the splits of `fractions` held out
  of 'train' by the rule. A split left empty is, in place of its images, the message of
  the `DataError` that asking for it raises (`BinarizedImages.grey_levels`)."""
  train = splits['train']
  held_out = {}
  for split, index in _held_out(train, fractions, split_seed).items():
    words = ', '.join(f'{configurable}.{name}_fraction = {fraction!r}'
                      for name, fraction in fractions.items())
    held_out[split] = train[index] if len(index) else (
        f'{origin}: the {split} split of its {len(train)} images is empty ({words})')
  return {**splits, **held_out}


def _check_same_shape(splits, origin):
  shapes = {split: grey.shape[1:] for split, grey in splits.items()
            if not isinstance(grey, str)}
  if len(set(shapes.values())) > 1:
    raise DataError(f'{origin}: its splits hold images of different shapes {shapes}')
  return splits


def _load_arrays(path):
  """`{name: array}` of an `.npz` or `.npy` file (an `.npy` is one array, named '')."""
  if not os.path.isfile(path):
    raise DataError(f'{path}: no such file (ImageFile.path)')
  if not path.endswith(('.npz', '.npy')):
    raise DataError(f'{path} is neither an .npz nor an .npy file')
  try:
    with open(path, 'rb') as f:
      loaded = np.load(f, allow_pickle=False)
      if isinstance(loaded, np.ndarray):
        return {'': loaded}
      with loaded:
        return {name: loaded[name] for name in loaded.files}
  except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as e:
    raise DataError(f'{path} is unreadable ({type(e).__name__}: {one_line(e)[:200]})') from None


def _file_splits(path, validation_fraction, test_fraction, split_seed):
  """`{split: grey levels}` of an image file, split by the file or by the rule."""
  arrays = _load_arrays(path)
  if 'train' in arrays:
    if 'test' not in arrays:
      raise DataError(f"{path} holds 'train' but no 'test' images")
    named = [split for split in SPLITS if split in arrays]
    splits = {split: grey_levels(arrays[split], f'{path}[{split!r}]') for split in named}
    fractions = {} if 'validation' in arrays else {'validation': validation_fraction}
  elif len(arrays) == 1:
    (name, array), = arrays.items()
    splits = {'train': grey_levels(array, f'{path}[{name!r}]' if name else path)}
    fractions = {'test': test_fraction, 'validation': validation_fraction}
  else:
    raise DataError(f"{path} holds the arrays {sorted(arrays)}; expected 'train' and 'test' "
                    "(and 'validation'), or a single array")
  if fractions:
    splits = _by_rule(splits, fractions, split_seed, path, 'ImageFile')
  return _check_same_shape(splits, path)


class BinarizedImages:
  """A data set of grey levels, binarized: the part that `ImageFile` and `TFDSImages`
  share. A subclass gives `_key()` (what identifies its source) and `_read()` (its
  `{split: grey levels}`)."""

  def __init__(self, binarization, threshold, seed):
    self.binarization = binarization
    self.threshold = threshold
    self.seed = seed

  def grey_levels(self, split):
    """The grey levels of `split`, `float32` `[N, H, W, C]` in [0, 1], read-only."""
    if split not in SPLITS:
      raise DataError(f'unknown split {split!r}; expected one of {", ".join(SPLITS)}')
    key = self._key()
    with _CACHE_LOCK:
      if key not in _CACHE:
        splits = self._read()
        for grey in splits.values():
          if not isinstance(grey, str):
            grey.setflags(write=False)
        _CACHE[key] = splits
      grey = _CACHE[key][split]
    if isinstance(grey, str):  # An empty split, and why.
      raise DataError(grey)
    return grey

  def __call__(self, split):
    """The images of `split`, binarized: read-only `uint8` `[N, H, W, C]` in {0, 1}."""
    grey = self.grey_levels(split)
    method = 'threshold' if self.binarization == 'threshold' else 'bernoulli'
    key = (self._key(), split, method, self.threshold if method == 'threshold' else self.seed)
    with _CACHE_LOCK:
      if key not in _CACHE:
        images = binarize(grey, method, self.threshold, self.seed, split)
        images.setflags(write=False)
        _CACHE[key] = images
      return _CACHE[key]

  def training_images(self):
    """What training draws its batches from: the grey levels of 'train' as a
    `pipeline.DynamicBinarization` under 'dynamic', else `self('train')`."""
    if self.binarization == 'dynamic':
      return pipeline.DynamicBinarization(self.grey_levels('train'))
    return self('train')

  def _key(self):
    raise NotImplementedError

  def _read(self):
    """`{split: grey levels}` of every split, or for a split left empty by the rule, the
    message that says so."""
    raise NotImplementedError


_BINARIZATION_DOMAINS = dict(binarization=domains.one_of(*BINARIZATIONS),
                             threshold=domains.FRACTION, seed=domains.SEED)
_HELD_OUT = domains.real(0, 1, high_open=True)


@gin.configurable
@domains.checked(path=domains.optional(domains.NAME), validation_fraction=_HELD_OUT,
                 test_fraction=_HELD_OUT, split_seed=domains.SEED, **_BINARIZATION_DOMAINS)
class ImageFile(BinarizedImages):
  """Images from an `.npz` or `.npy` file, split and binarized (see the module docstring).

  Args:
    path: Python `str`, the file (relative to the working directory).
    validation_fraction: Python `float` in [0, 1), the part held out as 'validation' when
      the file does not hold that split. Default 0.1.
    test_fraction: Python `float` in [0, 1), the part held out as 'test' when the file is
      one array. Default 0.1.
    split_seed: Python `int`, the seed of the rule's permutation. Default 0.
    binarization: Python `str`, 'threshold' (default), 'bernoulli' or 'dynamic'.
    threshold: Python `float` in (0, 1), of 'threshold'. Default 0.5.
    seed: Python `int`, of the Bernoulli draws of 'bernoulli' and 'dynamic' (the fixed
      draw that evaluation reads). Default 0.
  """

  def __init__(self, path=None, validation_fraction=0.1, test_fraction=0.1, split_seed=0,
               binarization='threshold', threshold=0.5, seed=0):
    super().__init__(binarization, threshold, seed)
    if path is None:
      raise DataError('ImageFile.path is not bound: bind it to an .npz or .npy file of '
                      'images')
    self.path = os.fspath(path)
    self.validation_fraction = validation_fraction
    self.test_fraction = test_fraction
    self.split_seed = split_seed

  def __repr__(self):
    return f'ImageFile({self.path!r})'

  def _key(self):
    path = os.path.realpath(self.path)
    try:
      stat = os.stat(path)
      version = (stat.st_mtime_ns, stat.st_size)
    except OSError:
      version = None  # Read (and refused) below.
    return ('file', path, version, self.validation_fraction, self.test_fraction,
            self.split_seed)

  def _read(self):
    return _file_splits(self.path, self.validation_fraction, self.test_fraction,
                        self.split_seed)


def _tfds_builder(name, data_dir):
  """The prepared TFDS builder of `name` (registered, or found in `data_dir`)."""
  tfds = import_tfds()
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except Exception as e:  # pylint: disable=broad-except
    # TFDS lists every data set it knows in its message: the first line says enough.
    raise DataError(f'TFDS has no data set {name!r}, registered or in '
                    f'{data_dir or "its default data folder"} ({type(e).__name__}: '
                    f'{str(e).splitlines()[0][:200]})') from None
  if not builder.is_prepared():
    try:
      builder.download_and_prepare()
    except Exception as e:  # pylint: disable=broad-except
      # A download fails in many ways (no network, proxy, checksum): all are one line.
      raise DataError(f'the TFDS builder {name!r} could not prepare its data in '
                      f'{builder.data_dir} ({type(e).__name__}: {one_line(e)[:300]})') from None
  return builder


def _tfds_split(builder, split, image_key):
  """The images of one TFDS split (name or slice), in TFDS's stored order."""
  tfds = import_tfds()
  origin = f'TFDS {builder.name} {split!r} in {builder.data_dir}'
  if image_key not in builder.info.features:
    raise DataError(f'TFDS {builder.name} has no feature {image_key!r} (TFDSImages.image_key);'
                    f' its features are {sorted(builder.info.features)}')
  try:
    dataset = builder.as_dataset(split=split, shuffle_files=False,
                                 read_config=tfds.ReadConfig(interleave_cycle_length=1))
    batches = [batch for batch in tfds.as_numpy(
        dataset.map(lambda example: example[image_key]).batch(1024))]
  except Exception as e:  # pylint: disable=broad-except
    # An unknown split, or images of different sizes that do not batch.
    raise DataError(f'{origin} cannot be read ({type(e).__name__}: '
                    f'{one_line(e)[:300]})') from None
  if not batches:
    raise DataError(f'{origin} is empty: no images')
  return grey_levels(np.concatenate(batches), origin)


@gin.configurable
@domains.checked(name=domains.optional(domains.NAME), data_dir=domains.optional(domains.NAME),
                 image_key=domains.NAME, train_split=domains.NAME,
                 validation_split=domains.optional(domains.NAME), test_split=domains.NAME,
                 validation_fraction=_HELD_OUT, split_seed=domains.SEED,
                 **_BINARIZATION_DOMAINS)
class TFDSImages(BinarizedImages):
  """Images of a TFDS data set by name, split and binarized (see the module docstring).

  Args:
    name: Python `str`, the data set: a TFDS builder's name ('mnist', 'fashion_mnist'),
      or that of one prepared in `data_dir`.
    data_dir: Python `str`, the TFDS data folder. Default `None`: TFDS's default
      (`$TFDS_DATA_DIR` or `~/tensorflow_datasets`). A data set that is not prepared there
      is downloaded and prepared first.
    image_key: Python `str`, the feature holding the images. Default 'image'.
    train_split: Python `str`, the TFDS split (or slice) of 'train'. Default 'train'.
    validation_split: Python `str`, that of 'validation'. Default `None`: held out of
      `train_split` by the rule.
    test_split: Python `str`, that of 'test'. Default 'test'.
    validation_fraction: Python `float` in [0, 1), the part of `train_split` held out when
      `validation_split` is `None`. Default 0.1.
    split_seed: Python `int`, the seed of that choice. Default 0.
    binarization: Python `str`, 'threshold' (default), 'bernoulli' or 'dynamic'.
    threshold: Python `float` in (0, 1), of 'threshold'. Default 0.5.
    seed: Python `int`, of the Bernoulli draws of 'bernoulli' and 'dynamic'. Default 0.
  """

  def __init__(self, name=None, data_dir=None, image_key='image', train_split='train',
               validation_split=None, test_split='test', validation_fraction=0.1,
               split_seed=0, binarization='threshold', threshold=0.5, seed=0):
    super().__init__(binarization, threshold, seed)
    if name is None:
      raise DataError('TFDSImages.name is not bound: bind it to a TFDS data set\'s name')
    self.name, self.data_dir, self.image_key = name, data_dir, image_key
    self.split_names = dict(train=train_split, validation=validation_split, test=test_split)
    self.validation_fraction, self.split_seed = validation_fraction, split_seed

  def __repr__(self):
    return f'TFDSImages({self.name!r})'

  def _key(self):
    data_dir = None if self.data_dir is None else os.path.realpath(self.data_dir)
    return ('tfds', self.name, data_dir, self.image_key, tuple(self.split_names.items()),
            self.validation_fraction, self.split_seed)

  def _read(self):
    builder = _tfds_builder(self.name, self.data_dir)
    splits = {split: _tfds_split(builder, name, self.image_key)
              for split, name in self.split_names.items() if name is not None}
    if self.split_names['validation'] is None:
      splits = _by_rule(splits, {'validation': self.validation_fraction}, self.split_seed,
                        f'TFDS {self.name} {self.split_names["train"]!r}', 'TFDSImages')
    return _check_same_shape(splits, f'TFDS {self.name}')


@gin.configurable
def example_shape(dataset=None):
  """The shape `(H, W, C)` of one image of `dataset('train')`, Python `int`s: bound to a
  network's `image_shape` (`@example_shape()`), it fits the network to the data."""
  if dataset is None:
    raise DataError('example_shape.dataset is not bound: bind it to the run\'s data set '
                    '(as train.dataset)')
  return tuple(int(size) for size in dataset('train').shape[1:])
