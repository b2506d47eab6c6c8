r"""Benchmark: training, evaluation and sampling speed of each family; FLOP utilisation.

  python -m brokenelbo.bench --gin_file=configs/cpu.gin --output=bench.json
  python -m brokenelbo.bench --families=---,-+v --gin_file=configs/cpu.gin

For each family, at the configured batch sizes (`train.batch_size`,
`train.eval_batch_size`):
- training images/s of the compiled multi-step loop, with plain `tf.function` and with XLA
  (`jit_compile`), the faster of which `train.jit_compile` should select, and with
  `--reference_convolutions` without `layers.GatedConv2D`'s matrix-product rewrites;
- the training step's FLOPs, counted from the step's graph (see `step_flops`), and the
  achieved FLOP/s as a fraction of the dense float32 matmul peak measured in this process;
- evaluation images/s (rate, distortion, ELBO; one z per example);
- the seconds to draw 100 samples x ~ d(x|z), z ~ m(z): the decoder's sampler and, for
  PixelCNN decoders, the naive sampler (one full network pass per pixel) on the same
  random numbers, with a check that both give the same images.
Then the input pipeline's images/s on its own. Every time is the median of `--repeats`
timings after `--warmup` untimed calls (the naive sampler: `--naive_repeats`, no warm-up
call, its graph traced beforehand).
"""

import contextlib
import inspect
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
from brokenelbo import layers
from brokenelbo import model as model_lib
from brokenelbo import objectives
from brokenelbo import training

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


def median_seconds(fn, repeats, warmup):
  """Median wall time of `fn()` over `repeats` calls after `warmup` calls."""
  return interleaved_median_seconds([fn], repeats, warmup)[0]


def interleaved_median_seconds(fns, repeats, warmup):
  """Median wall time of each of `fns`, timed in turn, `repeats` rounds after warm-up.

  Timing the variants of one step in alternation, rather than one after the other, keeps
  their ratio honest on a machine whose load drifts (other jobs, thermal limits).
  """
  for fn in fns:
    for _ in range(warmup):
      fn()
  times = [[] for _ in fns]
  for _ in range(repeats):
    for fn, fn_times in zip(fns, times):
      start = time.perf_counter()
      fn()
      fn_times.append(time.perf_counter() - start)
  return [float(np.median(t)) for t in times]


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


def _conv_flops(out_shape, filter_shape):
  """2 x (output elements) x (kernel height x width x input channels)."""
  kh, kw, cin, _ = filter_shape
  return 2 * out_shape.num_elements() * kh * kw * cin


def _live_ops(graph):
  """The ops of a `FuncGraph` its outputs depend on, in graph order.

  A gradient function builds every input's gradient (a convolution's input gradient for
  an image that is no variable, say); TensorFlow prunes those it does not need before it
  runs the graph, so they are not counted.
  """
  live = set()
  stack = [t.op for t in graph.outputs] + list(graph.control_outputs)
  while stack:
    op = stack.pop()
    if op in live:
      continue
    live.add(op)
    stack.extend(t.op for t in op.inputs)
    stack.extend(op.control_inputs)
  return [op for op in graph.get_operations() if op in live]


def step_flops(graph):
  """Multiply-add FLOPs (x2) of the convolutions and matrix products in `graph`.

  The analytic count of the dense work, from static shapes: a convolution with filter
  `[kh, kw, cin, cout]` producing `y` costs `2 |y| kh kw cin` (its gradients with respect
  to the input and the filter cost the same, counted from the output gradient's shape); a
  product `[m, k] x [k, n]` costs `2 m k n`. Element-wise work is not counted: it is not
  what the matmul peak measures. Only ops that the graph's outputs depend on count (see
  `_live_ops`). (TensorFlow's own cost statistics count a strided
  `Conv2DBackpropInput`, the transposed convolutions, twice over, so they are not used.)
  """
  total = 0
  for op in _live_ops(graph):
    if op.type == 'Conv2D':
      total += _conv_flops(op.outputs[0].shape, op.inputs[1].shape)
    elif op.type == 'Conv2DBackpropInput':
      total += _conv_flops(op.inputs[2].shape, op.inputs[1].shape)
    elif op.type == 'Conv2DBackpropFilter':
      total += _conv_flops(op.inputs[2].shape, op.outputs[0].shape)
    elif op.type in ('MatMul', 'BatchMatMulV2', 'BatchMatMulV3'):
      a, b = op.inputs[0].shape, op.inputs[1].shape
      adj_a = op.get_attr('transpose_a' if op.type == 'MatMul' else 'adj_x')
      adj_b = op.get_attr('transpose_b' if op.type == 'MatMul' else 'adj_y')
      m, k = (a[-1], a[-2]) if adj_a else (a[-2], a[-1])
      n = b[-2] if adj_b else b[-1]
      total += 2 * op.outputs[0].shape[:-2].num_elements() * m * k * n
    elif op.type in ('Conv2DBackpropInputV2', 'Conv3D', 'DepthwiseConv2dNative', 'Einsum'):
      raise NotImplementedError(f'step_flops does not count {op.type}')
  return total


def _training_call(images, batch_size, steps, jit_compile, reference=False):
  """A call of `steps` training steps (traced now) and its `Trainer`.

  `reference`: traced under `layers.reference_convolutions()`, which later calls keep.
  """
  trainer = training.Trainer(model_lib.VAE, objectives.beta_vae, tf.distribute.get_strategy(),
                             total_steps=10**6, steps_per_epoch=10**4, seed=0,
                             jit_compile=jit_compile)
  iterator = trainer.distribute(data.train_dataset(images, batch_size, seed=0))
  num_steps = tf.constant(steps)
  call = lambda: trainer.train_steps(iterator, num_steps)[0].numpy()
  with layers.reference_convolutions() if reference else contextlib.nullcontext():
    call()
  return call, trainer


def _sampling(vae, num_samples, repeats, warmup, naive_repeats):
  """Seconds to draw `num_samples` images with the decoder's sampler (and the naive one)."""
  seed = training.step_seed(0, 0)

  def decoder():
    return vae.decoder(vae.marginal_distribution().sample(num_samples, seed=seed))

  @tf.function
  def sample():
    return decoder().sample(seed=seed)

  result = dict(sample_seconds=median_seconds(lambda: sample().numpy(), repeats, warmup))
  if naive_repeats and hasattr(vae.decoder(tf.zeros([1, vae.latent_size])), 'sample_naive'):

    @tf.function
    def sample_naive():
      distribution = decoder()  # The same z, and the same uniforms as `sample`.
      return distribution.sample_naive(distribution.uniforms(seed))

    sample_naive.get_concrete_function()  # Traced here, not timed.
    naive = median_seconds(lambda: sample_naive().numpy(), naive_repeats, 0)
    result.update(naive_sample_seconds=naive,
                  sampling_speedup=naive / result['sample_seconds'],
                  samples_identical=bool(np.array_equal(sample().numpy(),
                                                        sample_naive().numpy())))
  return result


def benchmark_family(images, batch_size, eval_batch_size, steps, repeats, warmup, xla=True,
                     eval_batches=10, num_samples=100, naive_repeats=1, peak_flops=None,
                     reference_convolutions=False):
  """Measures the gin-configured `VAE` (beta-VAE objective); see the module docstring."""
  train, trainer = _training_call(images, batch_size, steps, jit_compile=False)
  variants = dict(plain=train)
  if xla:
    variants['xla'] = _training_call(images, batch_size, steps, jit_compile=True)[0]
  if reference_convolutions:
    variants['reference_convolutions'] = _training_call(
        images, batch_size, steps, jit_compile=False, reference=True)[0]
  # Every variant timed in alternation (see `interleaved_median_seconds`).
  rates = {name: steps * batch_size / seconds for name, seconds in zip(
      variants, interleaved_median_seconds(list(variants.values()), repeats, warmup))}
  train_rate = rates['plain']
  vae = trainer.vae
  x = tf.zeros([batch_size, *training.IMAGE_SHAPE])
  # A fresh trace at the static batch shape (the loop's own trace has an unknown batch).
  step = tf.function(trainer._replica_step_fn)  # pylint: disable=protected-access
  flops = step_flops(step.get_concrete_function(x).graph)
  result = dict(batch_size=batch_size,
                parameters=sum(v.shape.num_elements() for v in trainer.variables),
                train_images_per_second=train_rate,
                train_step_flops=flops,
                train_flops_per_second=flops * train_rate / batch_size)
  if peak_flops:
    result['train_flop_utilization'] = result['train_flops_per_second'] / peak_flops
  for name in ('xla', 'reference_convolutions'):
    if name in rates:
      result[f'train_images_per_second_{name}'] = rates[name]
  evaluate = training.make_evaluate(vae, eval_batch_size, seed=1)
  eval_images = images[:eval_batches * eval_batch_size]
  result['eval_images_per_second'] = eval_images.shape[0] / median_seconds(
      lambda: evaluate(eval_images), repeats, warmup)
  result.update(_sampling(vae, num_samples, repeats, warmup, naive_repeats))
  return result


def _train_setting(name):
  """`train`'s parameter `name` as configured (or its default)."""
  default = inspect.signature(training.train).parameters[name].default
  return gin.get_bindings(training.train).get(name, default)


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
      matmul_peak_flops=matmul_peak_flops(), families={})
  for family in FLAGS.families:
    gin.clear_config()
    cli.parse_gin([f'{family}.gin', *FLAGS.gin_file], FLAGS.gin_bindings)
    result = benchmark_family(
        images, _train_setting('batch_size'), _train_setting('eval_batch_size'),
        FLAGS.steps, FLAGS.repeats,
        FLAGS.warmup, xla=FLAGS.xla, eval_batches=FLAGS.eval_batches,
        num_samples=FLAGS.num_samples, naive_repeats=FLAGS.naive_repeats,
        peak_flops=results['matmul_peak_flops'],
        reference_convolutions=FLAGS.reference_convolutions)
    results['families'][family] = result
    logging.info('%s: %s', family, json.dumps(result))
    line = (f"{family}\ttrain {result['train_images_per_second']:.1f} images/s "
            f"({result['train_flop_utilization']:.0%} of peak)")
    if 'train_images_per_second_xla' in result:
      line += f", XLA {result['train_images_per_second_xla']:.1f}"
    if 'train_images_per_second_reference_convolutions' in result:
      line += (", Keras convolutions "
               f"{result['train_images_per_second_reference_convolutions']:.1f}")
    line += (f" | eval {result['eval_images_per_second']:.0f} images/s | "
             f"{FLAGS.num_samples} samples {result['sample_seconds']:.2f} s")
    if 'naive_sample_seconds' in result:
      line += (f" (naive {result['naive_sample_seconds']:.1f} s, "
               f"{result['sampling_speedup']:.0f}x, identical: "
               f"{result['samples_identical']})")
    print(line, flush=True)
  batch_size = max(r['batch_size'] for r in results['families'].values())
  results['pipeline_images_per_second'] = pipeline_images_per_second(
      images, batch_size, FLAGS.repeats, FLAGS.warmup)
  print(f"pipeline\t{results['pipeline_images_per_second']:.0f} images/s")
  print(f"matmul peak\t{results['matmul_peak_flops'] / 1e9:.1f} GFLOP/s")
  if FLAGS.output:
    files.write_atomic(FLAGS.output, json.dumps(results, indent=2) + '\n')


if __name__ == '__main__':
  cli.run(main)
