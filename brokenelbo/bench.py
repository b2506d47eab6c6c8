r"""Benchmark: training, evaluation and sampling speed of each family; FLOP utilisation.

  python -m brokenelbo.bench --gin_file=configs/cpu.gin --output=bench.json
  python -m brokenelbo.bench --families=---,-+v --gin_file=configs/cpu.gin

For each family at its batch sizes (`train.batch_size`, `train.eval_batch_size`):
- training images/s of the compiled multi-step loop with plain `tf.function`, with XLA
  (`jit_compile`) and with `--reference_convolutions`; the training step's FLOPs, counted
  from its graph, and its FLOP/s as a fraction of the measured dense float32 matmul peak;
- evaluation images/s (rate, distortion, ELBO; one z per example);
- the seconds to draw 100 samples x ~ d(x|z), z ~ m(z), with PixelCNN decoders also by the
  naive sampler (one full network pass per pixel), checked to give the same images;
- the importance-weighted bound L_K of `statistics.information` (Burda et al. 2016) on
  `--iw_examples` training images with K = `--iw_num_samples`: decoder passes per second,
  FLOPs and FLOP utilisation against the training step's; its first call timed apart;
- with `--suite`, the extrapolated seconds of the whole information suite, and of
  NLL_5000, on the 10,000-image test split;
- AIS's rate-distortion curve (`statistics.ais`, Huang et al. 2020) on `--ais_chains`
  chains of each of `--ais_images` training images: `--ais_transitions` transitions of
  `--ais_leapfrog_steps` leapfrog steps timed in alternation with one bare evaluation of
  log m(z), log d(x|z) and their gradients for the same chains and images (a leapfrog
  step's work), the time per leapfrog step and per image-chain-distribution, its ratio to
  the bare evaluation, and its FLOP utilisation against the training step's;
- the input pipeline's images/s on its own.
Every time is the median of `--repeats` timings after `--warmup` untimed calls. Each
measure and its exceptions in full: docs/methods.md.

#### References

[1] Burda, Grosse, Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
[2] Huang, Makhzani, Cao, Grosse. Evaluating lossy compression rates of deep generative
    models. ICML 2020.
"""

import os
import platform

from absl import flags
from absl import logging
import gin
import tensorflow as tf

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import data
from brokenelbo.evaluation import suite
from brokenelbo.experiments import bench
from brokenelbo.models import families
from brokenelbo.statistics import ais
from brokenelbo.statistics import information
from brokenelbo.training import restore
from brokenelbo.utils import cli
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
flags.DEFINE_integer('iw_examples', 100,
                     'Examples of the timed importance-weighted bound.', lower_bound=1)
flags.DEFINE_integer('iw_num_samples', 10,
                     'Its importance samples K per example.', lower_bound=1)
flags.DEFINE_integer('iw_samples_per_chunk', information.DEFAULT_SAMPLES_PER_CHUNK,
                     'Its draws per example per chunk call (its proposal and marginal see '
                     'information_suite.batch_size times this many latents at once).',
                     lower_bound=1)
flags.DEFINE_integer('ais_images', 8, 'Images of the timed AIS transitions (0: not measured).',
                     lower_bound=0)
flags.DEFINE_integer('ais_chains', 4, 'Their chains per image.', lower_bound=2)
flags.DEFINE_integer('ais_transitions', 2, 'Their transitions (distributions) per timed call.',
                     lower_bound=1)
flags.DEFINE_integer('ais_leapfrog_steps', ais.DEFAULT_NUM_LEAPFROG_STEPS,
                     'Their leapfrog steps per transition.', lower_bound=1)
flags.DEFINE_bool('suite', True, 'Also time the rest of the information suite and '
                  'extrapolate the whole suite\'s seconds on the test split.')
cli.define_gin_flags()
FLAGS = flags.FLAGS


def main(argv):
  del argv
  families.check_families(FLAGS.families)
  if FLAGS.output:  # An unwritable output fails now, not after the measurements.
    files.check_can_write_file(FLAGS.output, '--output')
  images = data.static_mnist('train')
  results = dict(
      machine=dict(platform=platform.platform(), processor=platform.processor(),
                   cpus=os.cpu_count(), tensorflow=tf.__version__),
      gin_files=FLAGS.gin_file, gin_bindings=FLAGS.gin_bindings,
      settings={name: FLAGS[name].value for name in (
          'steps', 'repeats', 'warmup', 'eval_batches', 'num_samples', 'naive_repeats',
          'iw_examples', 'iw_num_samples', 'iw_samples_per_chunk', 'suite', 'ais_images',
          'ais_chains', 'ais_transitions', 'ais_leapfrog_steps')},
      matmul_peak_flops=bench.matmul_peak_flops(), families={})
  for family in FLAGS.families:
    gin.clear_config()  # Each family's config alone.
    settings = restore.run_settings([f'configs/{family}.gin', *FLAGS.gin_file],
                                    FLAGS.gin_bindings)
    # The suite's counts and batch size under this family's config and the bindings.
    suite_arguments = cli.configured_arguments(suite.information_suite)
    result = bench.benchmark_family(
        settings, images, FLAGS.steps, FLAGS.repeats,
        FLAGS.warmup, xla=FLAGS.xla, eval_batches=FLAGS.eval_batches,
        num_samples=FLAGS.num_samples, naive_repeats=FLAGS.naive_repeats,
        peak_flops=results['matmul_peak_flops'],
        reference_convolutions=FLAGS.reference_convolutions,
        iw_examples=FLAGS.iw_examples, iw_num_samples=FLAGS.iw_num_samples,
        iw_batch_size=suite_arguments['batch_size'],
        iw_samples_per_chunk=FLAGS.iw_samples_per_chunk,
        suite_arguments=suite_arguments if FLAGS.suite else None,
        ais_images=FLAGS.ais_images, ais_chains=FLAGS.ais_chains,
        ais_transitions=FLAGS.ais_transitions, ais_leapfrog_steps=FLAGS.ais_leapfrog_steps)
    results['families'][family] = result
    logging.info('%s: %s', family, files.to_json(result))
    print(bench.summary_line(family, result, FLAGS.num_samples), flush=True)
    if FLAGS.suite:
      print(bench.suite_line(family, result), flush=True)
    if FLAGS.ais_images:
      print(bench.ais_line(family, result), flush=True)
  batch_size = max(r['batch_size'] for r in results['families'].values())
  results['pipeline_images_per_second'] = bench.pipeline_images_per_second(
      images, batch_size, FLAGS.repeats, FLAGS.warmup)
  print(f"pipeline\t{results['pipeline_images_per_second']:.0f} images/s")
  print(f"matmul peak\t{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
  if FLAGS.output:
    files.write_atomic(FLAGS.output, files.to_json(results, indent=2) + '\n')


if __name__ == '__main__':
  cli.start(main)
