r"""Benchmark: training, evaluation and sampling speed of each family; FLOP utilisation.

  python -m brokenelbo.bench --gin_file=configs/cpu.gin --output=bench.json
  python -m brokenelbo.bench --families=---,-+v --gin_file=configs/cpu.gin

For each family, at the configured batch sizes (`train.batch_size`,
`train.eval_batch_size`):
- training images/s of the compiled multi-step loop, with plain `tf.function` and with XLA
  (`jit_compile`), the faster of which `train.jit_compile` should select, and with
  `--reference_convolutions` without `layers.GatedConv2D`'s matrix-product rewrites;
- the training step's FLOPs, counted from the step's graph (`experiments.bench.step_flops`), and the
  achieved FLOP/s as a fraction of the dense float32 matmul peak measured in this process;
- evaluation images/s (rate, distortion, ELBO; one z per example);
- the seconds to draw 100 samples x ~ d(x|z), z ~ m(z): the decoder's sampler and, for
  PixelCNN decoders, the naive sampler (one full network pass per pixel) on the same
  random numbers, with a check that both give the same images.
Then the input pipeline's images/s on its own. Every time is the median of `--repeats`
timings after `--warmup` untimed calls (the naive sampler: `--naive_repeats`, no warm-up
call, its graph traced beforehand).
"""

import os
import platform

from absl import flags
from absl import logging
import gin
import tensorflow as tf

from brokenelbo import data
from brokenelbo.experiments import bench
from brokenelbo.experiments import families
from brokenelbo.training import restore
from brokenelbo.utils import cli
from brokenelbo.utils import configurables  # pylint: disable=unused-import
from brokenelbo.utils import files

flags.DEFINE_list('families', list(families.FAMILIES), 'Families to measure.')
flags.DEFINE_string('output', None, 'Write the results as JSON here.')
flags.DEFINE_integer('steps', 10, 'Training steps per timed call.', lower_bound=1)
flags.DEFINE_integer('repeats', 5, 'Timed calls per measurement (the median is reported).',
                     lower_bound=1)
flags.DEFINE_integer('warmup', 2, 'Untimed calls first (tracing, caches).', lower_bound=0)
flags.DEFINE_integer('naive_repeats', 1,
                     'Timed calls of the naive PixelCNN sampler (0: not measured).',
                     lower_bound=0)
flags.DEFINE_integer('num_samples', 100, 'Samples drawn per sampling measurement.',
                     lower_bound=1)
flags.DEFINE_integer('eval_batches', 10, 'Evaluation batches per timed call.', lower_bound=1)
flags.DEFINE_bool('xla', True, 'Also measure training with XLA (jit_compile).')
flags.DEFINE_bool('reference_convolutions', False,
                  'Also measure training with every convolution as Keras computes it '
                  '(`layers.reference_convolutions`), to time the matrix-product rewrites.')
cli.define_gin_flags()
FLAGS = flags.FLAGS


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
      settings={name: FLAGS[name].value for name in (
          'steps', 'repeats', 'warmup', 'eval_batches', 'num_samples', 'naive_repeats')},
      matmul_peak_flops=bench.matmul_peak_flops(), families={})
  for family in FLAGS.families:
    gin.clear_config()  # Each family's config alone.
    settings = restore.run_settings([f'configs/{family}.gin', *FLAGS.gin_file],
                                    FLAGS.gin_bindings)
    result = bench.benchmark_family(
        settings, images, FLAGS.steps, FLAGS.repeats,
        FLAGS.warmup, xla=FLAGS.xla, eval_batches=FLAGS.eval_batches,
        num_samples=FLAGS.num_samples, naive_repeats=FLAGS.naive_repeats,
        peak_flops=results['matmul_peak_flops'],
        reference_convolutions=FLAGS.reference_convolutions)
    results['families'][family] = result
    logging.info('%s: %s', family, files.to_json(result))
    print(bench.summary_line(family, result, FLAGS.num_samples), flush=True)
  batch_size = max(r['batch_size'] for r in results['families'].values())
  results['pipeline_images_per_second'] = bench.pipeline_images_per_second(
      images, batch_size, FLAGS.repeats, FLAGS.warmup)
  print(f"pipeline\t{results['pipeline_images_per_second']:.0f} images/s")
  print(f"matmul peak\t{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
  if FLAGS.output:
    files.write_atomic(FLAGS.output, files.to_json(results, indent=2) + '\n')


if __name__ == '__main__':
  cli.run(main)
