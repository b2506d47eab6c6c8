"""LiBI's step-1 penalty (eq. 44) with its gradient, per member: the Henze-Zirkler pair term
with its closed-form gradient (`statistics.henze_zirkler._pair_term`) against autodiff.

  python scripts/hz_penalty_bench.py [M]

M members (default 160) of N = 500 codes in 2-D, one thread, compiled as the training step
compiles it (`training.libi._penalty_and_gradient`); the two variants alternate twice, each
timed as the median of 9 calls of 5 steps. Prints ms per member and step.
"""

import sys
import time

import numpy as np
import tensorflow as tf

from brokenelbo.statistics import henze_zirkler
from brokenelbo.training import libi

N = 500  # Points per data set (Appendix E).


def autodiff_pair_term(whitened, beta2, n):
  """The pair term as `henze_zirkler` computes it, differentiated by autodiff."""
  d_j = tf.reduce_sum(tf.square(whitened), axis=-1)
  gram = tf.linalg.matmul(whitened, whitened, transpose_b=True)
  d_jk = tf.maximum(d_j[..., :, None] + d_j[..., None, :] - 2. * gram, 0.)
  return tf.reduce_sum(tf.exp(-beta2 / 2. * d_jk), axis=[-2, -1]) / n


def milliseconds_per_member(members):
  """Median ms per member and step of the compiled penalty and gradient."""
  codes = tf.constant(np.random.default_rng(0).normal(size=(members, N, 2)), tf.float32)
  ones = tf.ones([members])
  penalty = tf.function(libi._penalty_and_gradient.python_function,  # pylint: disable=protected-access
                        jit_compile=True, autograph=False)
  penalty(codes, ones, ones / 2., ones / 2., 20.)  # Compiles.
  times = []
  for _ in range(9):
    start = time.perf_counter()
    for _ in range(5):
      penalty(codes, ones, ones / 2., ones / 2., 20.)
    times.append((time.perf_counter() - start) / 5)
  return np.median(times) * 1e3 / members


def main():
  members = int(sys.argv[1]) if len(sys.argv) > 1 else 160
  tf.config.threading.set_intra_op_parallelism_threads(1)
  tf.config.threading.set_inter_op_parallelism_threads(1)
  closed_form = henze_zirkler._pair_term  # pylint: disable=protected-access
  for name, pair_term in [('closed-form', closed_form), ('autodiff', autodiff_pair_term)] * 2:
    henze_zirkler._pair_term = pair_term  # pylint: disable=protected-access
    print(f'{name:12s} {milliseconds_per_member(members):.3f} ms per member and step '
          f'(M = {members})', flush=True)


if __name__ == '__main__':
  main()
