r"""Benchmark: training throughput of each family, the input pipeline, the matmul peak.

  python -m brokenelbo.bench --gin_file=configs/cpu.gin --output=bench.json
  python -m brokenelbo.bench --families=---,-+v --gin_file=configs/cpu.gin

Each measurement is the median of `--repeats` timings after `--warmup` untimed ones. The
machine's dense float32 matmul rate is measured in the same process as a reference peak.
"""

import json
import os
import platform
import time

from absl import flags
from absl import logging
import gin
import numpy as np
import tensorflow as tf

from brokenelbo import cli
from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import families
from brokenelbo import data
from brokenelbo import files
from brokenelbo import model as model_lib
from brokenelbo import objectives
from brokenelbo import training

flags.DEFINE_list('families', list(families.FAMILIES), 'Families to measure.')
flags.DEFINE_string('output', None, 'Write the results as JSON here.')
flags.DEFINE_integer('steps', 10, 'Training steps per timed call.')
flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement (the median is reported).')
flags.DEFINE_integer('warmup', 2, 'Untimed calls first (tracing, caches).')
cli.define_gin_flags()
FLAGS = flags.FLAGS


def median_seconds(fn, repeats, warmup):
  """Median wall time of `fn()` over `repeats` calls after `warmup` calls."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def matmul_peak_flops(size=2048, repeats=10):
  """Dense float32 matmul FLOP/s, the reference peak of this machine."""
  a = tf.random.normal([size, size])
  b = tf.random.normal([size, size])
  matmul = tf.function(lambda: tf.matmul(a, b)[0, 0])
  seconds = median_seconds(lambda: matmul().numpy(), repeats, 2)
  return 2. * size**3 / seconds


def pipeline_images_per_second(images, batch_size, repeats, warmup, num_batches=500):
  """The training input pipeline on its own: images/s it delivers."""
  iterator = iter(data.train_dataset(images, batch_size, seed=0))

  def pull():
    for _ in range(num_batches):
      next(iterator)

  return num_batches * batch_size / median_seconds(pull, repeats, warmup)


def benchmark_family(images, batch_size, steps, repeats, warmup):
  """Training images/s of the gin-configured `VAE` at `batch_size` (beta-VAE objective)."""
  trainer = training.Trainer(model_lib.VAE, objectives.beta_vae, tf.distribute.get_strategy(),
                             total_steps=10**6, steps_per_epoch=10**4, seed=0)
  iterator = trainer.distribute(data.train_dataset(images, batch_size, seed=0))
  num_steps = tf.constant(steps)
  seconds = median_seconds(lambda: trainer.train_steps(iterator, num_steps)[0].numpy(),
                           repeats, warmup)
  num_parameters = sum(v.shape.num_elements() for v in trainer.variables)
  return dict(train_images_per_second=steps * batch_size / seconds,
              batch_size=batch_size, parameters=num_parameters)


def main(argv):
  del argv
  families.check_families(FLAGS.families)
  if FLAGS.output:  # An unwritable output fails now, not after the measurements.
    files.write_atomic(FLAGS.output + '.probe', '')
    tf.io.gfile.remove(FLAGS.output + '.probe')
  images = data.static_mnist('train')
  results = dict(
      machine=dict(platform=platform.platform(), processor=platform.processor(),
                   cpus=os.cpu_count(), tensorflow=tf.__version__),
      gin_files=FLAGS.gin_file, gin_bindings=FLAGS.gin_bindings,
      matmul_peak_flops=matmul_peak_flops(), families={})
  for family in FLAGS.families:
    gin.clear_config()
    cli.parse_gin([f'{family}.gin', *FLAGS.gin_file], FLAGS.gin_bindings)
    result = benchmark_family(images, gin.query_parameter('train.batch_size'), FLAGS.steps,
                              FLAGS.repeats, FLAGS.warmup)
    results['families'][family] = result
    logging.info('%s: %.1f training images/s (batch %d, %d parameters)', family,
                 result['train_images_per_second'], result['batch_size'],
                 result['parameters'])
    print(f"{family}\t{result['train_images_per_second']:.1f} images/s", flush=True)
  batch_size = max(r['batch_size'] for r in results['families'].values())
  results['pipeline_images_per_second'] = pipeline_images_per_second(
      images, batch_size, FLAGS.repeats, FLAGS.warmup)
  print(f"pipeline\t{results['pipeline_images_per_second']:.0f} images/s")
  print(f"matmul peak\t{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
  if FLAGS.output:
    files.write_atomic(FLAGS.output, json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  cli.run(main)
