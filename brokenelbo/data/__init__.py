"""Data: static binarized MNIST (`mnist`), 28x28 Omniglot (`omniglot`), the input
pipelines (`pipeline`), evenly spaced subsets of a split (`subsets`), and the four
synthetic data sets of the LiBI paper (`synthetic`: float32 vectors `[500, D]` per split,
`synthetic.synthetic(split, name, index)`).

Every data set is a function `dataset(split)` returning `uint8` images `[N, 28, 28, 1]` in
{0, 1}, bound in gin as `train.dataset` (`@static_mnist`, `@omniglot`, the function `omniglot.omniglot`).

#### Examples

```python
from brokenelbo import data

train = data.static_mnist('train')          # uint8, shape (50000, 28, 28, 1)
ds = data.make_dataset(train, batch_size=100, shuffle=True, repeat=True, seed=1)
```
"""

from brokenelbo.data import mnist
from brokenelbo.data import omniglot
from brokenelbo.data import pipeline
from brokenelbo.data import subsets
from brokenelbo.data import synthetic
# pylint: disable=g-importing-member
from brokenelbo.data.mnist import (DataError, IMAGE_SHAPE, SPLITS, static_mnist,
                                   tfds_binarized_mnist, write_amat_files)
from brokenelbo.data.pipeline import make_dataset, train_dataset
# pylint: enable=g-importing-member


def clear_cache():
  """Forgets every split loaded so far (MNIST and Omniglot): the next load reads again."""
  mnist.clear_cache()
  omniglot.clear_cache()
