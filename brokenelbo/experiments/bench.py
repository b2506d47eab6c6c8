"""Measurements of a family's speed: training, evaluation and sampling; FLOP utilisation.

`python -m brokenelbo.bench` runs them for each family (its docstring says what is measured
and how it is timed).
"""

import contextlib
import time

import numpy as np
import tensorflow as tf

from brokenelbo.data import pipeline
from brokenelbo.data.mnist import IMAGE_SHAPE  # pylint: disable=g-importing-member
from brokenelbo.evaluation import elbo
from brokenelbo.models import layers
from brokenelbo.training import trainer as trainer_lib
from brokenelbo.utils import seeds



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
  iterator = iter(pipeline.train_dataset(images, batch_size, seed=0))

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


def _training_call(settings, images, batch_size, steps, jit_compile, reference=False):
  """A call of `steps` training steps (traced now) and its `Trainer`, for the run of
  `settings` (`restore.run_settings`: its model, loss and objective).

  `reference`: traced under `layers.reference_convolutions()`, which later calls keep.
  """
  trainer = trainer_lib.Trainer(settings['model'],
                                trainer_lib.step_loss(settings['loss'], settings['objective']),
                                tf.distribute.get_strategy(), total_steps=10**6,
                                steps_per_epoch=10**4, seed=0, jit_compile=jit_compile)
  iterator = trainer.distribute(pipeline.train_dataset(images, batch_size, seed=0))
  num_steps = tf.constant(steps)
  call = lambda: trainer.train_steps(iterator, num_steps)[0].numpy()
  with layers.reference_convolutions() if reference else contextlib.nullcontext():
    call()
  return call, trainer


def _sampling(vae, num_samples, repeats, warmup, naive_repeats):
  """Seconds to draw `num_samples` images with the decoder's sampler (and the naive one)."""
  seed = seeds.step_seed(0, 0)

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


def benchmark_family(settings, images, steps, repeats, warmup, xla=True,
                     eval_batches=10, num_samples=100, naive_repeats=1, peak_flops=None,
                     reference_convolutions=False):
  """Measures the run of `settings` (`restore.run_settings`) at its batch sizes; see
  `bench`'s docstring."""
  batch_size, eval_batch_size = settings['batch_size'], settings['eval_batch_size']
  train, trainer = _training_call(settings, images, batch_size, steps, jit_compile=False)
  variants = dict(plain=train)
  if xla:
    variants['xla'] = _training_call(settings, images, batch_size, steps, jit_compile=True)[0]
  if reference_convolutions:
    variants['reference_convolutions'] = _training_call(
        settings, images, batch_size, steps, jit_compile=False, reference=True)[0]
  # Every variant timed in alternation (see `interleaved_median_seconds`).
  rates = {name: steps * batch_size / seconds for name, seconds in zip(
      variants, interleaved_median_seconds(list(variants.values()), repeats, warmup))}
  train_rate = rates['plain']
  vae = trainer.vae
  x = tf.zeros([batch_size, *IMAGE_SHAPE])
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
  evaluate = elbo.make_evaluate(vae, eval_batch_size, seed=1)
  eval_images = images[:eval_batches * eval_batch_size]
  result['eval_images_per_second'] = eval_images.shape[0] / median_seconds(
      lambda: evaluate(eval_images), repeats, warmup)
  result.update(_sampling(vae, num_samples, repeats, warmup, naive_repeats))
  return result


def summary_line(family, result, num_samples):
  """One line of `benchmark_family`'s `result`: training, evaluation and sampling speed."""
  line = (f"{family}\ttrain {result['train_images_per_second']:.1f} images/s "
          f"({result['train_flop_utilization']:.0%} of peak)")
  if 'train_images_per_second_xla' in result:
    line += f", XLA {result['train_images_per_second_xla']:.1f}"
  if 'train_images_per_second_reference_convolutions' in result:
    line += (", Keras convolutions "
             f"{result['train_images_per_second_reference_convolutions']:.1f}")
  line += (f" | eval {result['eval_images_per_second']:.0f} images/s | "
           f"{num_samples} samples {result['sample_seconds']:.2f} s")
  if 'naive_sample_seconds' in result:
    line += (f" (naive {result['naive_sample_seconds']:.1f} s, "
             f"{result['sampling_speedup']:.0f}x, identical: "
             f"{result['samples_identical']})")
  return line
