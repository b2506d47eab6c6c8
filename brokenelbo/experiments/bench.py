"""Measurements of a family's speed: training, evaluation and sampling; FLOP utilisation.

`python -m brokenelbo.bench` runs them for each family (its docstring says what is measured
and how it is timed). `information_suite_seconds` extrapolates what
`suite.information_suite` would take on a whole split from calls timed once each (compiling
their `tf.function`s included, as every call of the suite does) on the first examples, with
the suite's batch size and its estimators' default chunk sizes:

- NLL_K: the N x max(K) decoder passes of its one stream of draws at the rate measured on
  the importance-weighted bound, plus what compiling the bound's chunk took.
- I_e, R and the marginal gap (`information.mutual_information`): timed on n and 2n
  examples, n = the larger of the suite's batch and the encoders per chunk; seconds = fixed
  + per_block * ceil(N / encoders_per_chunk) * ceil(N / latents_per_chunk), the (encoder
  batch x latent chunk) blocks of the aggregate posterior, each with its share of the draws
  and encoder passes. Up to `latents_per_chunk` examples every block has the same size (the
  latents are padded to one whole chunk), so this follows the work done; beyond, it scales
  the draws and encoder passes, which grow as N only, as the blocks: an upper bound.
- Active units (`information.active_units`): timed on one and two batches, linear in the
  number of batches.
- E and G_K (`information.generative_bounds`): timed with K = 1 on one and two batches of
  pairs, linear in the number of batches, plus the other max(K) - 1 decoder passes per pair
  at the bound's rate.
"""

import contextlib
import inspect
import math
import time

import numpy as np
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.data import pipeline
from brokenelbo.data.mnist import IMAGE_SHAPE  # pylint: disable=g-importing-member
from brokenelbo.models import layers
from brokenelbo.statistics import ais
from brokenelbo.statistics import elbo
from brokenelbo.statistics import information
from brokenelbo.training import step as step_lib
from brokenelbo.utils import seeds

# Burda et al. (2016) estimate log p(x) on the whole test split (10,000 static MNIST images,
# Section 5 of the paper) with K = 5000 importance samples; `suite_line` prints what that
# would take at the measured rate.
BURDA_NUM_SAMPLES = 5000
TEST_EXAMPLES = 10000


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
  matmul = tf.function(lambda: tf.matmul(a, b)[0, 0], autograph=False)
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
  `_live_ops`). A function call counts its body once; a `tf.while_loop` (and so
  `tf.map_fn`) counts its body times its `maximum_iterations`, which must then be static (a
  `tf.map_fn` over a static number of elements runs exactly that many). (TensorFlow's own
  cost statistics count a strided `Conv2DBackpropInput`, the transposed convolutions, twice
  over, so they are not used.)
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
    elif op.type in ('PartitionedCall', 'StatefulPartitionedCall'):
      total += step_flops(_function_graph(op, 'f'))
    elif op.type in ('While', 'StatelessWhile'):
      total += _loop_flops(op)
    elif op.type in ('Conv2DBackpropInputV2', 'Conv3D', 'DepthwiseConv2dNative', 'Einsum'):
      raise NotImplementedError(f'step_flops does not count {op.type}')
  return total


def _function_graph(op, attr):
  """The `FuncGraph` of the function that `op`'s attribute `attr` names."""
  return op.graph._get_function(op.get_attr(attr).name).graph  # pylint: disable=protected-access


def _loop_flops(op):
  """`step_flops` of a `While` op: its body's, times its static trip count."""
  body = step_flops(_function_graph(op, 'body'))
  if not body:
    return 0
  # Loop inputs of `while_v2`: the iteration counter, then `maximum_iterations` (-1: none).
  trips = tf.get_static_value(op.inputs[1])
  if trips is None or trips < 0:
    raise NotImplementedError(f'step_flops: {op.name} runs a body of {body} FLOPs an '
                              'unknown number of times')
  return int(trips) * body


def _training_call(settings, images, batch_size, steps, jit_compile, reference=False):
  """A call of `steps` training steps (traced now) and its `Trainer`, for the run of
  `settings` (`restore.run_settings`: its model and loss, the loss with its objective bound
  in gin, `rate_distortion_loss.objective`).

  `reference`: traced under `layers.reference_convolutions()`, which later calls keep.
  """
  trainer = step_lib.Trainer(settings['model'], settings['loss'],
                                tf.distribute.get_strategy(), total_steps=10**6,
                                steps_per_epoch=10**4, seed=0, jit_compile=jit_compile)
  iterator = trainer.distribute(pipeline.train_dataset(images, batch_size, seed=0))
  num_steps = tf.constant(steps)
  call = lambda: trainer.train_steps(iterator, num_steps)[0].numpy()
  with layers.reference_convolutions() if reference else contextlib.nullcontext():
    call()
  return call, trainer


def _batch_sizes(num_examples, batch_size):
  """The examples in each batch of `num_examples` taken `batch_size` at a time."""
  return [min(batch_size, num_examples - start) for start in range(0, num_examples, batch_size)]


def _segment_lengths(num_samples, samples_per_chunk):
  """The draws of each chunk call of `importance_weighted_bound` for the one K
  `num_samples` (`information._importance_stream`'s segments)."""
  ends = sorted({num_samples, *range(samples_per_chunk, num_samples, samples_per_chunk)})
  return np.diff([0, *ends]).tolist()


def importance_weighted_flops(vae, example_shape, num_examples, num_samples, batch_size,
                              samples_per_chunk):
  """FLOPs of `information.importance_weighted_bound` on `num_examples` examples for the one
  K `num_samples`, counted from the graph of its compiled chunk as `step_flops` counts the
  training step's.

  The bound makes one chunk call (`information._importance_chunk`) per batch of examples
  and segment of draws; each distinct pair of sizes is traced afresh at static shapes and
  counted. A call on b examples and s draws runs the proposal (the encoder) on the b
  images and the marginal and the decoder on the b s latents, so the count is
  (examples x K) decoder and marginal passes plus one encoder pass per example and segment.

  Args:
    vae: a `vae.VAE` (its `encoder` is the proposal, as in `suite.information_suite`).
    example_shape: Python `tuple`, the shape of one image.
    num_examples, num_samples, batch_size, samples_per_chunk: Python `int`s, the
      arguments of `importance_weighted_bound` (N, K, examples per batch, draws per chunk).

  Returns:
    Python `int`, the FLOPs of the whole bound.
  """
  marginal = vae.marginal_distribution()
  per_call, total = {}, 0
  for rows in _batch_sizes(num_examples, batch_size):
    for draws in _segment_lengths(num_samples, samples_per_chunk):
      if (rows, draws) not in per_call:
        # A fresh function per shape: a second trace of one would relax its shapes.
        chunk = information._importance_chunk(  # pylint: disable=protected-access
            vae.decoder, marginal, vae.encoder)
        per_call[rows, draws] = step_flops(chunk.get_concrete_function(
            tf.TensorSpec([rows, *example_shape]), tf.TensorSpec([2], tf.int64),
            tf.TensorSpec([draws], tf.int32)).graph)
      total += per_call[rows, draws]
  return total


def _importance_weighted_call(vae, images, num_samples, batch_size, samples_per_chunk):
  """A call of the work of `information.importance_weighted_bound` on `images` for the one
  K `num_samples`: its stream of chunk calls over every batch, with the bound's seeds.

  The bound compiles its chunk afresh on each call; this call compiles it on its first
  call and keeps it, so that later calls time the steady state (the first call's time is
  what one call of the bound pays).
  """
  stream = information._importance_stream(  # pylint: disable=protected-access
      vae.decoder, vae.marginal_distribution(), vae.encoder, [num_samples],
      samples_per_chunk)
  images = np.asarray(images, np.float32)
  batches = [(tf.constant(images[start:start + batch_size]),
              tf.random.experimental.stateless_fold_in(tf.constant([0, 0], tf.int64), batch))
             for batch, start in enumerate(range(0, images.shape[0], batch_size))]

  def call():
    for x, seed in batches:
      stream(x, seed)  # Its bounds come back as numpy: the call has finished.

  return call


def _seconds(fn):
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def _fit_seconds(measure, counts, work):
  """Times `measure(n)` once for each of the two `counts`; fits seconds = fixed + per_unit
  * work(n) through the two, both terms clipped at 0 (the fixed part: compiling the
  suite's fresh `tf.function`s, which every call of its estimators does)."""
  seconds = [_seconds(lambda n=n: measure(n)) for n in counts]
  units = [work(n) for n in counts]
  per_unit = max(0., (seconds[1] - seconds[0]) / (units[1] - units[0]))
  return seconds, max(0., seconds[0] - per_unit * units[0]), per_unit


def _suite_counts(arguments, split_examples):
  """The counts of `information_suite(**arguments)` on a split of `split_examples`."""
  ks = sorted({int(k) for k in np.atleast_1d(arguments['num_samples'])})
  batch = int(arguments['batch_size'])
  if ks[0] < 1 or batch < 1:
    raise errors.UserError('information_suite needs num_samples >= 1 and batch_size >= 1, '
                           f'got {arguments["num_samples"]} and {arguments["batch_size"]}')
  return dict(likelihood_examples=min(int(arguments['likelihood_examples']), split_examples),
              num_samples=ks,
              information_examples=min(int(arguments['information_examples']),
                                       split_examples),
              generative_examples=int(arguments['generative_examples']), batch_size=batch,
              split_examples=split_examples)


def _mutual_information_chunks():
  """`information.mutual_information`'s default encoders and latents per chunk and draws."""
  defaults = {name: parameter.default for name, parameter in
              inspect.signature(information.mutual_information).parameters.items()}
  return (defaults['encoders_per_chunk'], defaults['latents_per_chunk'],
          defaults['num_samples'])


def _extrapolated(measure, measured, work, count):
  """`measure(n)` timed at the two counts `measured`, its seconds extrapolated to `count`
  (`_fit_seconds`)."""
  seconds, fixed, per_unit = _fit_seconds(measure, measured, work)
  return dict(seconds=fixed + per_unit * work(count), measured_examples=list(measured),
              measured_seconds=seconds)


def information_suite_seconds(vae, images, arguments, passes_per_second, compile_seconds,
                              split_examples=TEST_EXAMPLES):
  """The seconds that `suite.information_suite(model, split, seed, **arguments)` would take
  on a split of `split_examples` examples (the module docstring says how each measure is
  timed and extrapolated).

  Args:
    vae: a `vae.VAE`.
    images: array `[N, ...]`, at least twice the measured counts.
    arguments: `dict`, `information_suite`'s arguments (`cli.configured_arguments`).
    passes_per_second: Python `float`, decoder passes per second of the
      importance-weighted bound (`benchmark_family`'s `iw_decoder_passes_per_second`).
    compile_seconds: Python `float`, one call of the bound's compile time.
    split_examples: Python `int`, the examples of the split (the suite takes the first
      `likelihood_examples` and `information_examples` of them).

  Returns:
    `dict`: counts (the suite's counts on the split); likelihood, mutual_information,
    active_units, generative, each a `dict` with its extrapolated seconds and what was
    timed (measured_examples, measured_seconds) or counted (decoder_passes); seconds, the
    total.
  """
  counts = _suite_counts(arguments, split_examples)
  ks, batch = counts['num_samples'], counts['batch_size']
  encoders, latents, draws = _mutual_information_chunks()  # The suite draws one z each.
  information_batch = max(batch, encoders)
  if images.shape[0] < 2 * information_batch:
    raise errors.UserError(f'timing the information suite takes {2 * information_batch} '
                           f'images, got {images.shape[0]}')
  encoder, decoder, marginal = vae.encoder, vae.decoder, vae.marginal_distribution()
  passes = counts['likelihood_examples'] * ks[-1]
  result = dict(counts=counts,
                likelihood=dict(seconds=compile_seconds + passes / passes_per_second,
                                decoder_passes=passes))
  result['mutual_information'] = _extrapolated(
      lambda n: information.mutual_information(encoder, marginal, images[:n], 1,
                                               batch_size=batch),
      (information_batch, 2 * information_batch),
      lambda n: math.ceil(n / encoders) * math.ceil(n * draws / latents),
      counts['information_examples'])
  result['active_units'] = _extrapolated(
      lambda n: information.active_units(
          encoder, images[:n], threshold=arguments['active_unit_threshold'],
          batch_size=batch, seed=2),
      (batch, 2 * batch), lambda n: math.ceil(n / batch), counts['information_examples'])
  result['generative'] = _extrapolated(
      lambda n: information.generative_bounds(encoder, decoder, marginal, n, 3,
                                              num_samples=1, batch_size=batch),
      (batch, 2 * batch), lambda n: math.ceil(n / batch), counts['generative_examples'])
  passes = counts['generative_examples'] * (ks[-1] - 1)  # The other max(K) - 1 per pair.
  result['generative']['seconds'] += passes / passes_per_second
  if passes:
    result['generative']['decoder_passes'] = passes
  result['generative']['measured_num_samples'] = 1
  result['seconds'] = sum(result[name]['seconds'] for name in (
      'likelihood', 'mutual_information', 'active_units', 'generative'))
  return result


def _sampling(vae, num_samples, repeats, warmup, naive_repeats):
  """Seconds to draw `num_samples` images with the decoder's sampler (and the naive one)."""
  seed = seeds.step_seed(0, 0)

  def decoder():
    return vae.decoder(vae.marginal_distribution().sample(num_samples, seed=seed))

  @tf.function(autograph=False)  # Traced as written, as every function here.
  def sample():
    return decoder().sample(seed=seed)

  result = dict(sample_seconds=median_seconds(lambda: sample().numpy(), repeats, warmup))
  if naive_repeats and hasattr(vae.decoder(tf.zeros([1, vae.latent_size])), 'sample_naive'):

    @tf.function(autograph=False)
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


def _training_variants(settings, images, steps, xla, reference_convolutions):
  """The training calls to time, `{name: call}` (plain, then XLA and the Keras
  convolutions if asked for), and the plain call's `Trainer`."""
  batch_size = settings['batch_size']
  train, trainer = _training_call(settings, images, batch_size, steps, jit_compile=False)
  variants = dict(plain=train)
  if xla:
    variants['xla'] = _training_call(settings, images, batch_size, steps, jit_compile=True)[0]
  if reference_convolutions:
    variants['reference_convolutions'] = _training_call(
        settings, images, batch_size, steps, jit_compile=False, reference=True)[0]
  return variants, trainer


def _training_result(trainer, rates, batch_size, peak_flops):
  """The training step's size, FLOPs and speed, from each variant's images/s `rates`."""
  train_rate = rates['plain']
  x = tf.zeros([batch_size, *IMAGE_SHAPE])
  # A fresh trace at the static batch shape (the loop's own trace has an unknown batch).
  step = tf.function(trainer.replica_step_fn,
                     autograph=False)
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
  return result


def _importance_weighted_result(vae, seconds, first_call_seconds, iw_examples,
                                iw_num_samples, iw_batch_size, iw_samples_per_chunk):
  """The importance-weighted bound's arguments, FLOPs and speed, from its median
  `seconds` and its `first_call_seconds`."""
  passes = iw_examples * iw_num_samples
  iw_flops = importance_weighted_flops(vae, IMAGE_SHAPE, iw_examples, iw_num_samples,
                                       iw_batch_size, iw_samples_per_chunk)
  return dict(iw_examples=iw_examples, iw_num_samples=iw_num_samples,
              iw_batch_size=iw_batch_size, iw_samples_per_chunk=iw_samples_per_chunk,
              iw_decoder_passes=passes, iw_seconds=seconds,
              iw_first_call_seconds=first_call_seconds,
              iw_decoder_passes_per_second=passes / seconds,
              iw_seconds_per_example=seconds / iw_examples,
              iw_flops=iw_flops, iw_flops_per_second=iw_flops / seconds)


def ais_transition_flops(vae, example_shape, num_chains, num_images, num_leapfrog_steps):
  """FLOPs of one AIS transition of `statistics.ais` (one HMC step of `num_leapfrog_steps`
  leapfrog steps, each one evaluation of log m(z), log d(x|z) and their gradients) for
  `num_chains` chains of each of `num_images` images, counted from its graph at static
  shapes as `step_flops` counts the training step's.

  The chains' state carries both gradients from the previous step, so the count is
  `num_leapfrog_steps` x chains x images passes of the decoder forward and back to z.
  """
  decoder, marginal = vae.decoder, vae.marginal_distribution()
  latent = [num_chains, num_images, vae.latent_size]
  per_chain = [num_chains, num_images]
  # pylint: disable=protected-access

  def transition(x, point, step_size, seed):
    evaluate = lambda z: ais._evaluate(decoder, marginal, x, z)
    return ais._hmc_step(evaluate, point, 1., step_size, seed, num_leapfrog_steps)

  point = ais._Point(*(tf.TensorSpec(shape) for shape in (
      latent, per_chain, per_chain, latent, latent)))
  # pylint: enable=protected-access
  graph = tf.function(transition, autograph=False).get_concrete_function(
      tf.TensorSpec([num_chains * num_images, *example_shape]), point,
      tf.TensorSpec([num_images]), tf.TensorSpec([2], tf.int32)).graph
  return step_flops(graph)


def _check_counts(images, iw_batch_size, iw_examples, ais_images):
  """Raises `errors.UserError` for counts that `benchmark_family` cannot time."""
  if iw_batch_size < 1:
    raise errors.UserError(f'the importance-weighted bound needs a batch size >= 1, got '
                           f'{iw_batch_size}')
  if iw_examples > images.shape[0]:
    raise errors.UserError(f'the importance-weighted bound is timed on {iw_examples} '
                           f'examples, more than the {images.shape[0]} given')
  if ais_images > images.shape[0]:
    raise errors.UserError(f'AIS is timed on {ais_images} images, more than the '
                           f'{images.shape[0]} given')


def _ais_calls(vae, images, num_chains, num_images, num_transitions, num_leapfrog_steps):
  """Two calls, traced now: `num_transitions` transitions of `statistics.ais`'s compiled
  annealing loop for `num_chains` chains of each of the first `num_images` of `images`,
  from the same chains at z ~ m(z) each call, at the initial step size; and one bare
  evaluation, compiled alone, of log m, log d and their gradients at those chains' latents,
  the work of a leapfrog step."""
  decoder, marginal = vae.decoder, vae.marginal_distribution()
  # pylint: disable=protected-access
  sampler = ais._sampler(num_chains, 1, num_leapfrog_steps, ais.DEFAULT_TARGET_ACCEPTANCE,
                         ais.DEFAULT_INITIAL_STEP_SIZE)
  annealer = ais._Annealer(decoder, marginal, sampler, adapt=False)
  x = tf.constant(np.asarray(images[:num_images], np.float32))
  chains = annealer.start_from_marginal(x, tf.constant([0, 0], tf.int32))
  schedule = np.linspace(0., 1., num_transitions + 1)
  step_sizes = np.full([num_transitions, x.shape[0]], ais.DEFAULT_INITIAL_STEP_SIZE)
  seed, x_tiled = tf.constant([0, 1], tf.int32), ais._tile(x, num_chains)
  evaluate = tf.function(lambda z: ais._evaluate(decoder, marginal, x_tiled, z),
                         autograph=False)
  # pylint: enable=protected-access
  calls = (lambda: annealer.run(x, chains, schedule, [num_transitions], seed, step_sizes),
           lambda: evaluate(chains.point.z).grad_d.numpy())
  for call in calls:
    call()
  return calls


def _ais_result(vae, seconds, evaluate_seconds, num_chains, num_images, num_transitions,
                num_leapfrog_steps, peak_flops, train_flops_per_second):
  """AIS's settings, time per leapfrog step and per image-chain-distribution, its ratio to
  the bare evaluation's `evaluate_seconds`, and FLOPs and their utilization (against the
  peak and the training step's), from the median `seconds` of a call of `_ais_calls`."""
  leapfrog_steps = num_transitions * num_leapfrog_steps
  transition_flops = ais_transition_flops(vae, IMAGE_SHAPE, num_chains, num_images,
                                          num_leapfrog_steps)
  result = dict(ais_chains=num_chains, ais_images=num_images,
                ais_transitions=num_transitions, ais_leapfrog_steps=num_leapfrog_steps,
                ais_seconds=seconds, ais_leapfrog_seconds=seconds / leapfrog_steps,
                ais_seconds_per_image_chain_distribution=(
                    seconds / (num_transitions * num_chains * num_images)),
                ais_evaluate_seconds=evaluate_seconds,
                ais_leapfrog_to_evaluate=seconds / leapfrog_steps / evaluate_seconds,
                ais_leapfrog_flops=transition_flops // num_leapfrog_steps,
                ais_flops_per_second=num_transitions * transition_flops / seconds)
  if peak_flops:
    result['ais_flop_utilization'] = result['ais_flops_per_second'] / peak_flops
  # The ratio of the two utilizations: the peak cancels.
  result['ais_to_train_utilization'] = (result['ais_flops_per_second']
                                        / train_flops_per_second)
  return result


def benchmark_family(settings, images, steps, repeats, warmup, xla=True,
                     eval_batches=10, num_samples=100, naive_repeats=1, peak_flops=None,
                     reference_convolutions=False, iw_examples=100, iw_num_samples=10,
                     iw_batch_size=information.DEFAULT_BATCH_SIZE,
                     iw_samples_per_chunk=information.DEFAULT_SAMPLES_PER_CHUNK,
                     suite_arguments=None, ais_images=0, ais_chains=4, ais_transitions=2,
                     ais_leapfrog_steps=ais.DEFAULT_NUM_LEAPFROG_STEPS):
  """Measures the run of `settings` (`restore.run_settings`) at its batch sizes; see
  `bench`'s docstring.

  The importance-weighted bound runs on the first `iw_examples` of `images` with K =
  `iw_num_samples`, `iw_batch_size` examples per batch and `iw_samples_per_chunk` draws per
  chunk, timed in alternation with the training step. With `suite_arguments`
  (`information_suite`'s), the rest of the suite is timed too
  (`information_suite_seconds`). With `ais_images` > 0, `ais_transitions` AIS transitions
  of `ais_leapfrog_steps` leapfrog steps for `ais_chains` chains of each of the first
  `ais_images` images, and one bare evaluation of a leapfrog step's work, are timed in the
  same alternation (`_ais_calls`).
  """
  batch_size, eval_batch_size = settings['batch_size'], settings['eval_batch_size']
  _check_counts(images, iw_batch_size, iw_examples, ais_images)
  variants, trainer = _training_variants(settings, images, steps, xla,
                                         reference_convolutions)
  vae = trainer.vae
  bound = _importance_weighted_call(vae, images[:iw_examples], iw_num_samples, iw_batch_size,
                                    iw_samples_per_chunk)
  iw_first_call = _seconds(bound)  # Compiles its chunk, as every call of the bound does.
  calls = {**variants, 'iw': bound}
  ais_counts = (ais_chains, ais_images, ais_transitions, ais_leapfrog_steps)
  if ais_images:
    calls['ais'], calls['ais_evaluate'] = _ais_calls(vae, images, *ais_counts)
  # Every call timed in alternation (see `interleaved_median_seconds`).
  seconds = dict(zip(calls, interleaved_median_seconds([*calls.values()], repeats, warmup)))
  rates = {name: steps * batch_size / seconds[name] for name in variants}
  result = _training_result(trainer, rates, batch_size, peak_flops)
  result.update(_importance_weighted_result(vae, seconds['iw'], iw_first_call, iw_examples,
                                            iw_num_samples, iw_batch_size,
                                            iw_samples_per_chunk))
  if peak_flops:
    result['iw_flop_utilization'] = result['iw_flops_per_second'] / peak_flops
  # The ratio of the two utilizations: the peak cancels.
  result['iw_to_train_utilization'] = (result['iw_flops_per_second']
                                       / result['train_flops_per_second'])
  if ais_images:
    result.update(_ais_result(vae, seconds['ais'], seconds['ais_evaluate'], *ais_counts,
                              peak_flops, result['train_flops_per_second']))
  evaluate = elbo.make_evaluate(vae, eval_batch_size, seed=1)
  eval_images = images[:eval_batches * eval_batch_size]
  result['eval_images_per_second'] = eval_images.shape[0] / median_seconds(
      lambda: evaluate(eval_images), repeats, warmup)
  result.update(_sampling(vae, num_samples, repeats, warmup, naive_repeats))
  if suite_arguments is not None:
    result['suite'] = information_suite_seconds(
        vae, images, suite_arguments, result['iw_decoder_passes_per_second'],
        max(0., iw_first_call - seconds['iw']))
    result['suite_seconds'] = result['suite']['seconds']
  return result


def summary_line(family, result, num_samples):
  """One line of `benchmark_family`'s `result`: training, evaluation, sampling and
  importance-weighted bound speed, and the information suite's extrapolated time."""
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
  if 'iw_decoder_passes_per_second' in result:
    line += (f" | IW bound {result['iw_decoder_passes_per_second']:.0f} decoder passes/s "
             f"({result['iw_examples']} examples x K={result['iw_num_samples']}, "
             f"{result['iw_flop_utilization']:.0%} of peak, "
             f"{result['iw_to_train_utilization']:.2f}x training's utilization)")
  if 'suite_seconds' in result:
    line += f" | suite ~{result['suite_seconds']:.0f} s"
  return line


def ais_line(family, result):
  """AIS's speed in `result` (`benchmark_family`'s, timed with `ais_images`): per leapfrog
  step and per image-chain-distribution, against the bare forward and gradient of the
  same chains and images, and its FLOP utilization against the training step's."""
  line = (f"{family}\tAIS {result['ais_chains']} chains x {result['ais_images']} images, "
          f"{result['ais_transitions']} transitions x {result['ais_leapfrog_steps']} "
          f"leapfrog steps: {1e3 * result['ais_leapfrog_seconds']:.1f} ms per leapfrog "
          f"step, {1e3 * result['ais_seconds_per_image_chain_distribution']:.2f} ms per "
          f"image-chain-distribution; {1. / result['ais_leapfrog_to_evaluate']:.0%} of the "
          f"speed of the bare log m, log d and gradients "
          f"({1e3 * result['ais_evaluate_seconds']:.1f} ms)")
  if 'ais_flop_utilization' in result:
    line += (f"; {result['ais_flop_utilization']:.1%} of peak against "
             f"{result['train_flop_utilization']:.1%} for the training step")
  return line


def suite_line(family, result):
  """What `result['suite']` (`information_suite_seconds`) measured and extrapolated, and
  Burda et al.'s NLL_5000 on the test split at the measured rate of decoder passes."""
  suite = result['suite']
  counts = suite['counts']
  ks = ','.join(map(str, counts['num_samples']))
  rate = result['iw_decoder_passes_per_second']

  def timed(name):
    part = suite[name]
    measured = ' and '.join(f'{n} ({t:.2f} s)' for n, t in zip(part['measured_examples'],
                                                               part['measured_seconds']))
    return f"{part['seconds']:.1f} s (timed once on {measured}"

  generative = suite['generative']
  return (
      f"{family}\tinformation suite on {counts['split_examples']:,} examples, "
      f"extrapolated: NLL_K (K={ks}) on {counts['likelihood_examples']:,} "
      f"{suite['likelihood']['seconds']:.1f} s ({suite['likelihood']['decoder_passes']:,} "
      f"decoder passes at the IW bound's {rate:.0f}/s, + its compile time); "
      f"I_e on {counts['information_examples']:,} {timed('mutual_information')} examples); "
      f"active units on {counts['information_examples']:,} {timed('active_units')} "
      f"examples); E, G_{counts['num_samples'][-1]} on {counts['generative_examples']:,} "
      f"pairs {timed('generative')} pairs at K=1, + "
      f"{generative.get('decoder_passes', 0):,} decoder passes at the IW rate); "
      f"total {suite['seconds']:.1f} s. NLL_{BURDA_NUM_SAMPLES} on {TEST_EXAMPLES:,} "
      f"examples: {BURDA_NUM_SAMPLES * TEST_EXAMPLES / rate:,.0f} s at that rate")
