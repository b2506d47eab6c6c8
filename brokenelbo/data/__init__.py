"""Data: static binarized MNIST (`mnist`), 28x28 Omniglot (`omniglot`), your own images
from a file or a TFDS data set (`images`), the input pipelines (`pipeline`), evenly spaced
subsets of a split (`subsets`), and the four synthetic data sets of the LiBI paper
(`synthetic`: float32 vectors `[500, D]` per split, `synthetic.synthetic(split, name, index)`).

Every image data set is a callable `dataset(split)` returning `uint8` images `[N, H, W, C]`
in {0, 1} (`[N, 28, 28, 1]` for MNIST and Omniglot), bound in gin as `train.dataset`
(`@static_mnist`, `@omniglot`, `@ImageFile()`, `@TFDSImages()`). One may also say how it
was binarized (`dataset.binarization`, which a run's record states) and give the images
that training draws from (`dataset.training_images()`: a `pipeline.DynamicBinarization`
for a fresh Bernoulli draw at every step).

#### Examples

```python
from brokenelbo import data

train = data.static_mnist('train')          # uint8, shape (50000, 28, 28, 1)
ds = data.make_dataset(train, batch_size=100, shuffle=True, repeat=True, seed=1)
```
"""

import importlib
import sys

# The submodules, and the names re-exported from them. Each is imported when first used
# (PEP 562), so that `from brokenelbo.data import synthetic`, which needs no TensorFlow,
# loads none: a command can check its flags and print a table in a fraction of a second.
_SUBMODULES = ('images', 'mnist', 'omniglot', 'pipeline', 'subsets', 'synthetic')
_EXPORTS = {'DataError': 'mnist', 'IMAGE_SHAPE': 'mnist', 'SPLITS': 'mnist',
            'static_mnist': 'mnist', 'tfds_binarized_mnist': 'mnist',
            'write_amat_files': 'mnist', 'make_dataset': 'pipeline',
            'train_dataset': 'pipeline', 'DynamicBinarization': 'pipeline',
            'ImageFile': 'images', 'TFDSImages': 'images'}


def __getattr__(name):
  if name in _SUBMODULES:
    return importlib.import_module(f'{__name__}.{name}')
  if name in _EXPORTS:
    return getattr(importlib.import_module(f'{__name__}.{_EXPORTS[name]}'), name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted({*globals(), *_SUBMODULES, *_EXPORTS})


def clear_cache():
  """Forgets every split loaded so far (MNIST, Omniglot, your own images): the next load
  reads again."""
  for name in ('images', 'mnist', 'omniglot'):
    module = sys.modules.get(f'{__name__}.{name}')
    if module is not None:  # Not imported: nothing loaded.
      module.clear_cache()
