"""Stateless seeds: every random draw of a run is a function of (seed, step, replica)."""

import tensorflow as tf


def step_seed(seed, step, replica=0):
  """The stateless seed `[2]` of one training step on one replica.

  Args:
    seed: Python `int` or scalar `Tensor`, the run's seed (`train.seed`).
    step: scalar integer `Tensor`, the step (or batch index, for evaluation).
    replica: scalar integer, the replica (or the sample index, for evaluation).

  Returns:
    `int64` `Tensor` `[2]`, for `tf.random.stateless_*` and TFP's `seed=` arguments.
  """
  base = tf.stack([tf.constant(seed, tf.int64), tf.constant(0, tf.int64)])
  return tf.random.experimental.stateless_fold_in(
      tf.random.experimental.stateless_fold_in(base, tf.cast(step, tf.int64)), replica)
