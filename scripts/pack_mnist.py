"""Regenerates `brokenelbo/data/assets/binarized_mnist.npz` from the shared MATLAB files.

The static binarized MNIST of Larochelle & Murray (2011) can no longer be downloaded from
its original address, so the package carries its own bit-packed copy. This script rebuilds
that copy from `../shared/data/binarized_mnist/binarized_mnist_{train,valid,test}.mat`
(variable `X`, `uint8`, shape `(N, 784)`, rows in stored order) and refuses to write it
unless every split, written back out as the original `.amat` text, has the SHA-256 digest
that tensorflow-datasets records for its `binarized_mnist` builder.

The archive holds one `uint8` array per split, keyed 'train', 'validation' and 'test',
each `np.packbits(X, axis=1)` of shape `(N, 98)`. It is written with fixed zip timestamps,
so running this script twice gives byte-identical files.

Usage (from the project root):

  .venv/bin/python scripts/pack_mnist.py [--data_dir=../shared/data/binarized_mnist]
"""

import argparse
import io
import os
import sys
import zipfile

import numpy as np
import scipy.io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from brokenelbo.data import mnist as data  # pylint: disable=g-import-not-at-top,wrong-import-position

# File stem of each split in the shared folder (the original names use 'valid').
_MAT_FILENAMES = {
    'train': 'binarized_mnist_train.mat',
    'validation': 'binarized_mnist_valid.mat',
    'test': 'binarized_mnist_test.mat',
}


def load_mat(path, split):
  """Returns the `(N, 784)` `uint8` array `X` of one `.mat` file, checked."""
  x = scipy.io.loadmat(path)['X']
  expected_shape = (data.NUM_EXAMPLES[split], data.NUM_PIXELS)
  if x.dtype != np.uint8 or x.shape != expected_shape:
    sys.exit(f'{path}: expected uint8 {expected_shape}, got {x.dtype} {x.shape}')
  if not np.all(x <= 1):
    sys.exit(f'{path}: values outside {{0, 1}}')
  digest = data.amat_sha256(x)
  if digest != data.AMAT_SHA256[split]:
    sys.exit(f'{path}: .amat SHA-256 {digest} != {data.AMAT_SHA256[split]}')
  return np.ascontiguousarray(x)


def write_npz(path, arrays):
  """Writes `arrays` (name -> ndarray) as a deflated `.npz` with fixed timestamps."""
  tmp = path + '.tmp'
  with zipfile.ZipFile(tmp, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
    for name, array in arrays.items():
      buf = io.BytesIO()
      np.lib.format.write_array(buf, array, allow_pickle=False)
      info = zipfile.ZipInfo(name + '.npy', date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      info.external_attr = 0o644 << 16
      zf.writestr(info, buf.getvalue(), compresslevel=9)
  os.replace(tmp, path)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n', 1)[0])
  parser.add_argument('--data_dir',
                      default=os.path.join(ROOT, '..', 'shared', 'data', 'binarized_mnist'))
  parser.add_argument('--output', default=data.ASSET_PATH)
  args = parser.parse_args()

  packed = {}
  for split in data.SPLITS:
    x = load_mat(os.path.join(args.data_dir, _MAT_FILENAMES[split]), split)
    packed[split] = np.packbits(x, axis=1)
    print(f'{split}: {x.shape[0]} images, .amat SHA-256 {data.AMAT_SHA256[split]} ok')
  os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
  write_npz(args.output, packed)
  print(f'wrote {args.output} ({os.path.getsize(args.output):,} bytes)')

  # Read it back through the package loader, which verifies every split again.
  data.clear_cache()
  for split in data.SPLITS:
    data.static_mnist(split, path=args.output)
  print('verified by brokenelbo.data.mnist.static_mnist')


if __name__ == '__main__':
  main()
