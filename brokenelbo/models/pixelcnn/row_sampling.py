"""A row-causal network as a program of rows: its parallel pass and fast raster sampling.

A network describes itself as a program of `Node`s, which gives both of its passes:
`run_full` evaluates it over whole activations (training, `log_prob`), `sample` draws from
it in raster order reusing finished rows [1]. With convolutions that never look down
(PixelCNN's shifted ones, strided and transposed ones included), row k of every activation
depends only on the image rows up to some D(k): once image row D(k) is complete, row k is
final and can be cached. Every activation read with a row offset (a convolution's zero
padding, a shift) is a node, with the rows of its inputs that its rows read (a `RowRule`).

From the rules alone, `Schedule` derives D(k) for every node (`dependencies`) and plans
each image row r: per pixel, a *live pass* computes only the rows that the logits of row r
need and that have D(k) = r, reading the others (D(k) < r) from the cache; once row r is
drawn, a *final pass* computes and caches every row with D(k) = r.

Exactness: a cached row is computed from final rows once every image row it depends on is
complete, as a full pass over the finished image computes it; a live pass sees the image
that the naive sampler sees (pixels not drawn yet are 0.). So each logit is the naive one
up to float rounding of convolutions on other shapes, and each pixel too unless its uniform
falls within that rounding (~1e-7) of its probability.

[1] Ramachandran, Paine, Khorrami, Babaeizadeh, Chang, Zhang, Hasegawa-Johnson, Campbell,
    Huang. Fast Generation for Convolutional Autoregressive Models. ICLR 2017 Workshop.
"""

import math
from typing import Callable, NamedTuple, Optional, Tuple

import numpy as np
import tensorflow as tf

# The names of the program's two sources and of its output.
IMAGE = 'x'  # The image mapped to [-1, 1], `2. * x - 1.`; row k depends on row k.
COND = 'cond'  # The conditioning map; depends on no image row (D = -1).
LOGITS = 'logits'  # Row k must depend on image rows up to k exactly.


class RowRule(NamedTuple):
  """Which rows of an input the rows [a, b) of a node read (rows above the image are zero).

  `kind='same'`: rows [a - back, b - lag) of an input with as many rows. `kind='down'`:
  rows [2a - 1, 2b - 1) of an input with twice the rows (a stride-2 convolution of height 2
  with one zero row on top). `kind='up'`: rows [a // 2, (b - 1) // 2 + 1) of an input with
  half the rows (a stride-2 transposed convolution of height 2).
  """
  kind: str = 'same'
  back: int = 0
  lag: int = 0

  def needs(self, a, b):
    """Input rows `(lo, hi)` that output rows [a, b) read."""
    if self.kind == 'down':
      return 2 * a - 1, 2 * b - 1
    if self.kind == 'up':
      return a // 2, (b - 1) // 2 + 1
    return a - self.back, b - self.lag

  def first(self, lo):
    """First output row computed from input rows starting at `lo`."""
    if self.kind == 'down':
      return (lo + 1) // 2
    if self.kind == 'up':
      return 2 * lo
    return lo + self.back


SAME = RowRule()  # Row k reads row k (1x1 convolutions, sums, gates).
CONV = RowRule(back=1)  # Row k reads rows k - 1 and k (shifted convolution of height 2).
SHIFT = RowRule(back=1, lag=1)  # Row k reads row k - 1 (`down_shift`).
DOWN = RowRule('down')  # Half-resolution row k reads rows 2k - 1 and 2k.
UP = RowRule('up')  # Double-resolution row m reads row m // 2.


class Node(NamedTuple):
  """One activation `[B, height // scale, width // scale, channels]` of a program.

  To compute its rows [a, b), `fn` is called with one band `[B, rows, W, C]` per
  `(source, rule)` of `inputs`: the rows `rule.needs(a, b)` of `source`, zero above the
  image. It returns rows from `rule.first(lo)` of its first input on; rows outside [a, b)
  are dropped. The parallel pass (`run_full`) calls it once with [a, b) all its rows, the
  sampler (`sample`) with the few rows that a pixel or an image row changes. Every tensor
  that the network reads with zero rows above it must be a node (its cache holds those
  zero rows). Sources (the `IMAGE` and `COND` of a network) have no `inputs` and no `fn`.

  With `pads_above`, `fn` also takes a keyword `zero_rows`: per input, how many zero rows
  above the image its band lacks, to be added by `fn` itself, e.g. in the padding of a
  convolution (with its columns: one copy of the input, not two). The parallel pass gives
  such a node its inputs whole, from row 0 to their last; rows below those that it reads
  may only add output rows below its own, which are dropped. The sampler's bands hold
  their zero rows, and it passes no `zero_rows` (meaning none).
  """
  name: str
  scale: int
  channels: int
  inputs: Tuple[Tuple[str, RowRule], ...] = ()
  fn: Optional[Callable[..., tf.Tensor]] = None
  pads_above: bool = False


def band(x, lo, hi):
  """Rows [lo, hi) of an activation, the rows above it (lo < 0) being zero.

  Args:
    x: `Tensor` `[B, H, W, C]`, with a static H.
    lo: Python `int`, first row; `-lo` zero rows are concatenated above row 0 if negative.
    hi: Python `int`, one past the last row, at most H.

  Returns:
    `Tensor` `[B, hi - lo, W, C]`.
  """
  if hi > x.shape[1]:
    raise ValueError(f'Rows [{lo}, {hi}) of an activation with {x.shape[1]} rows.')
  if lo >= 0:
    return x if lo == 0 and hi == x.shape[1] else x[:, lo:hi]
  zeros = tf.zeros_like(x[:, :1])
  rows = x if hi == x.shape[1] else x[:, :hi]
  # The zero rows are concatenated, not `tf.pad`ded: in tensorflow 2.21 with oneDNN on (the
  # x86 default), a compiled graph in which a `tf.pad` output is added to a Conv2D + BiasAdd
  # (as in PixelCNN's `u = down_shift(u_in(x)) + cond_u(cond)`) crashes with a segmentation
  # fault in the oneDNN layout rewrite pass (`MklLayoutRewritePass`) on some CPUs (seen on a
  # Xeon with AMX, in forward-only graphs such as evaluation). The values are the same.
  return tf.concat([zeros] * -lo + [rows], axis=1)


def _node_rows(node, bands, a, b, **kwargs):
  """Rows [a, b) of `node` from its input bands, the rows `rule.needs(a, b)` of each."""
  rule = node.inputs[0][1]
  first = rule.first(rule.needs(a, b)[0])
  rows = node.fn(*bands, **kwargs)
  if first != a or rows.shape[1] != b - a:
    rows = rows[:, a - first:b - first]
  return rows


@tf.autograph.experimental.do_not_convert  # Plain Python control flow, traced as is.
def run_full(program, sources):
  """The parallel pass of a program: every node over whole activations, in order.

  Each node's function is called once, with the rows `rule.needs(0, rows)` of each input
  (`band`; a node that `pads_above` gets its inputs whole and the counts of the zero rows
  above them), and its output is cropped to its rows [0, rows), rows = H // scale. Nothing
  is cast: the functions compute in whatever dtype their layers do.

  Args:
    program: Python `list` of `Node`, in an order where inputs come first.
    sources: Python `dict` from the name of every node without `fn` (`IMAGE` and `COND`
      in a network's program) to its `Tensor` `[B, H // scale, W // scale, C]`; H static.

  Returns:
    Python `dict`, `{name: Tensor}` for every node of `program`.
  """
  values = dict(sources)
  height = next(values[node.name].shape[1] * node.scale for node in program
                if node.fn is None)
  if height is None:
    raise ValueError('The image height must be static.')
  for node in program:
    if node.fn is None:
      if node.name not in values:
        raise ValueError(f'No value for the source {node.name}.')
      continue
    rows = height // node.scale
    needs = [rule.needs(0, rows) for _, rule in node.inputs]
    if node.pads_above:
      if any(lo > 0 for lo, _ in needs):
        raise ValueError(f'{node.name} pads above but does not read from row 0 on.')
      # Whole inputs, which give the same rows [0, rows): a stride-2 convolution ignores
      # the last row of its input (one copy less than a band without it).
      bands = [values[source] for source, _ in node.inputs]
      zero_rows = tuple(-lo for lo, _ in needs)
      values[node.name] = _node_rows(node, bands, 0, rows, zero_rows=zero_rows)
    else:
      bands = [band(values[source], lo, hi)
               for (source, _), (lo, hi) in zip(node.inputs, needs)]
      values[node.name] = _node_rows(node, bands, 0, rows)
  return values


def dependencies(program, height):
  """Last image row D(k) that row k of each node depends on: `{name: array}`, -1: none."""
  deps = {}
  for node in program:
    rows = height // node.scale
    if node.name == IMAGE:
      deps[node.name] = np.arange(rows)
      continue
    last = np.full(rows, -1)
    for k in range(rows):
      for source, rule in node.inputs:
        lo, hi = rule.needs(k, k + 1)
        if hi > len(deps[source]):
          raise ValueError(f'Row {k} of {node.name} reads row {hi - 1} of {source}, '
                           f'which has {len(deps[source])} rows.')
        if hi > max(lo, 0):
          last[k] = max(last[k], deps[source][max(lo, 0):hi].max())
    if np.any(np.diff(last) < 0):
      raise ValueError(f'The rows of {node.name} do not become final in order: {last}.')
    deps[node.name] = last
  if not np.array_equal(deps[LOGITS], np.arange(height)):
    raise ValueError(f'Logits row k must depend on image rows up to k: {deps[LOGITS]}.')
  return deps


class Step(NamedTuple):
  """Rows [a, b) of node `name`; per input, `(source, cached rows, fresh rows)`."""
  name: str
  a: int
  b: int
  reads: Tuple[Tuple[str, Tuple[int, int], Tuple[int, int]], ...]


class Schedule:
  """The live and final passes of every image row, and how they repeat.

  The plans repeat with period P (the largest downsampling factor; P = 4 for 28, 14 and 7
  rows): the plan of row r + P is the plan of row r with every node's rows moved by
  P / scale. `sample` draws rows by a `tf.while_loop` over groups of P rows whose body holds
  the P plans with a dynamic row offset, so the graph does not grow with the image height;
  rows whose plans do not repeat (row -1, which caches what depends on no pixel) are
  unrolled. Its caches are `tf.TensorArray`s of rows (writing a row copies no whole
  activation), after the zero rows above the image that the convolutions' padding reads.

  Planned as if the image had P more rows than are drawn, so that the plans of the last
  rows repeat too: they compute a few rows below the image, which no row above reads.
  Planning raises a `ValueError` wherever a pass would read a row that is not final.

  Args:
    program: Python `list` of `Node`, in an order where inputs come first.
    height: Python `int`, image rows.

  Attributes:
    deps: `{name: array}`, D(k) for every row of every node (`dependencies`).
    live: `{r: tuple of Step}`, the pass per pixel of row r (r = 0, ..., height - 1).
    final: `{r: tuple of Step}`, the pass after row r (r = -1: before row 0).
    period: Python `int`, P.
    start, groups: Python `int`s; the plans of rows [start, start + groups * P) are those
      of rows [start, start + P) moved by a multiple of P rows (`shifted`).
    pad: Python `int`, zero rows above the image that the passes read.
    planned_rows: Python `int`, rows of the caches (at scale 1).
  """

  def __init__(self, program, height):
    self.nodes = {node.name: node for node in program}
    self.program = program
    self.period = math.lcm(*(node.scale for node in program))
    self.planned_rows = height + self.period  # Rows of the caches.
    self.deps = dependencies(program, self.planned_rows)
    rows = range(-1, height)  # -1: rows that depend on no image row, before the first.
    self.live = {r: self._plan(r, self._needed(r)) if r >= 0 else () for r in rows}
    self.final = {r: self._plan(r) for r in rows}
    reads = [step.reads for plan in [*self.live.values(), *self.final.values()]
             for step in plan]
    self.pad = max([0] + [-cached[0] for r in reads for _, cached, _ in r])
    self.start, self.groups = self._repeats(height)

  def _needed(self, r):
    """Rows `{name: (lo, hi)}` that the logits of row r read, transitively (hull)."""
    need = {LOGITS: (r, r + 1)}
    for node in reversed(self.program):
      if node.name not in need:
        continue
      a, b = need[node.name]
      for source, rule in node.inputs:
        lo, hi = rule.needs(a, b)
        lo = max(lo, 0)
        if hi > lo:
          old = need.get(source, (lo, hi))
          need[source] = (min(old[0], lo), max(old[1], hi))
    return need

  def _plan(self, r, needed=None):
    """Steps computing the rows with D = r (only those in `needed`, if given).

    Every other row that a step reads must have D < r, i.e. be final and cached.
    """
    fresh = {}
    plan = []
    for node in self.program:
      rows = np.nonzero(self.deps[node.name] == r)[0]
      if needed is not None:
        lo, hi = needed.get(node.name, (0, 0))
        rows = rows[(rows >= lo) & (rows < hi)]
      if not rows.size:
        continue
      a, b = int(rows[0]), int(rows[-1]) + 1
      reads = []
      for source, rule in node.inputs:
        lo, hi = rule.needs(a, b)
        f_lo, f_hi = fresh.get(source, (hi, hi))
        cached, new = (lo, min(hi, f_lo)), (max(lo, f_lo), hi)
        if hi > f_hi:
          raise ValueError(f'Row {r}: {node.name} reads rows of {source} past its last.')
        past = self.deps[source][max(cached[0], 0):max(cached[1], 0)]
        if np.any(past >= r):  # Exactness: cached rows are final.
          raise ValueError(f'Row {r}: {node.name} reads unfinished rows of {source}.')
        reads.append((source, cached, new))
      fresh[node.name] = (a, b)
      plan.append(Step(node.name, a, b, tuple(reads)))
    return tuple(plan)

  def shifted(self, plan, rows):
    """`plan` with the rows of every node moved by `rows // scale` (rows % P == 0)."""
    def move(name, span):
      return tuple(k + rows // self.nodes[name].scale for k in span)

    return tuple(
        Step(s.name, *move(s.name, (s.a, s.b)),
             tuple((src, move(src, cached), move(src, new)) for src, cached, new in s.reads))
        for s in plan)

  def _repeats(self, height):
    """`(start, groups)`: rows [start, start + groups * P) repeat the first P plans."""
    best = (0, 0)
    for start in range(min(self.period, height)):
      groups = 0
      while start + (groups + 1) * self.period <= height and all(
          self.live[r + groups * self.period] == self.shifted(self.live[r],
                                                              groups * self.period) and
          self.final[r + groups * self.period] == self.shifted(self.final[r],
                                                               groups * self.period)
          for r in range(start, start + self.period)):
        groups += 1
      if groups > best[1]:
        best = (start, groups)
    return best


def _cache(node, batch, width, pad, height):
  """A `TensorArray` of the rows of `node`, after `pad` zero rows (the rows above)."""
  shape = [batch, width // node.scale, node.channels]
  cache = tf.TensorArray(tf.float32, size=pad + height // node.scale,
                         element_shape=[tf.get_static_value(batch)] + shape[1:],
                         clear_after_read=False)
  zero = tf.zeros(shape)
  for k in range(pad):
    cache = cache.write(k, zero)
  return cache


def _read(cache, lo, hi, offset):
  """Rows [lo, hi) of a cache, stored from index `offset` on, as `[B, hi - lo, W, C]`."""
  if hi - lo == 1:
    return tf.expand_dims(cache.read(lo + offset), 1)
  return tf.transpose(cache.gather(tf.range(lo, hi) + offset), [1, 0, 2, 3])


def _cached_reads(schedule, plan, caches, offsets):
  """Every band of cached rows that `plan` reads, `{(source, lo, hi): band}`."""
  reads = {}
  for step in plan:
    for source, (lo, hi), _ in step.reads:
      if hi > lo and (source, lo, hi) not in reads:
        offset = offsets[schedule.nodes[source].scale]
        reads[source, lo, hi] = _read(caches[source], lo, hi, offset)
  return reads


def _run(schedule, plan, reads, sources):
  """Runs the steps of `plan`: `{name: band}`, the rows [a, b) that each step computed."""
  fresh, starts = {}, {}
  for step in plan:
    node = schedule.nodes[step.name]
    starts[step.name] = step.a
    if node.fn is None:
      fresh[step.name] = sources[step.name]
      continue
    bands = []
    for source, (lo, hi), (new_lo, new_hi) in step.reads:
      parts = [reads[source, lo, hi]] if hi > lo else []
      if new_hi > new_lo:
        new = fresh[source]
        if new.shape[1] != new_hi - new_lo:
          new = new[:, new_lo - starts[source]:new_hi - starts[source]]
        parts.append(new)
      bands.append(parts[0] if len(parts) == 1 else tf.concat(parts, axis=1))
    # Cached in float32 (a no-op unless the layers compute in 16 bits).
    fresh[step.name] = tf.cast(_node_rows(node, bands, step.a, step.b), tf.float32)
  return fresh


def _write(schedule, plan, fresh, caches, offsets):
  """The caches with the rows that `plan` computed written in."""
  caches = dict(caches)
  for step in plan:
    if step.name not in caches:
      continue
    offset = offsets[schedule.nodes[step.name].scale]
    rows = fresh[step.name]
    if step.b - step.a == 1:
      caches[step.name] = caches[step.name].write(step.a + offset, tf.squeeze(rows, 1))
    else:
      caches[step.name] = caches[step.name].scatter(
          tf.range(step.a, step.b) + offset, tf.transpose(rows, [1, 0, 2, 3]))
  return caches


class _RowDrawer:
  """Draws the rows of one `sample` call, given its `Schedule`, uniforms and map."""

  def __init__(self, schedule, uniforms, cond):
    self.schedule = schedule
    self.uniforms, self.cond = uniforms, cond
    self.height, self.width = uniforms.shape[1], uniforms.shape[2]
    self.columns = tf.range(self.width)[tf.newaxis, :, tf.newaxis]
    self.scales = {node.scale for node in schedule.program}

  def __call__(self, r, caches, drawn_logits, group=0):
    """Draws image row `r + group * P`; row -1 caches the rows that depend on no pixel.

    Returns the caches with the row's final pass written in, and `drawn_logits` with the
    row's logits written in.
    """
    schedule = self.schedule
    # The index of row k of a node with scale s in its cache is k + offsets[s].
    offsets = {s: schedule.pad + group * (schedule.period // s) for s in self.scales}
    if r < 0:
      below = schedule.planned_rows - self.height  # Rows below the image: any value.
      sources = {COND: tf.pad(self.cond, [[0, 0], [0, below], [0, 0], [0, 0]])}
      return self._final_pass(r, caches, offsets, sources), drawn_logits
    image_row = r + group * schedule.period
    x_row, logits_row = self._draw_pixels(r, tf.gather(self.uniforms, image_row, axis=1),
                                          caches, offsets)
    caches = self._final_pass(r, caches, offsets, {IMAGE: 2. * x_row[:, tf.newaxis] - 1.})
    return caches, drawn_logits.write(image_row, logits_row)

  def _draw_pixels(self, r, u_row, caches, offsets):
    """The pixels `[B, W, 1]` of an image row planned as row `r`, drawn left to right with
    the uniforms `u_row`, each by a live pass, and the logits they were drawn with."""
    live = self.schedule.live[r]
    reads = _cached_reads(self.schedule, live, caches, offsets)  # The same for every pixel.

    def draw_pixel(c, x_row, logits_row):
      fresh = _run(self.schedule, live, reads, {IMAGE: 2. * x_row[:, tf.newaxis] - 1.})
      logits = fresh[LOGITS][:, 0]
      pixels = tf.cast(u_row < tf.sigmoid(logits), x_row.dtype)
      here = tf.equal(self.columns, c)
      return c + 1, tf.where(here, pixels, x_row), tf.where(here, logits, logits_row)

    zeros = tf.zeros_like(u_row)
    _, x_row, logits_row = tf.while_loop(lambda c, *_: c < self.width, draw_pixel,
                                         (tf.constant(0), zeros, zeros))
    return x_row, logits_row

  def _final_pass(self, r, caches, offsets, sources):
    """The caches with the rows of the final pass after row `r` computed and written."""
    final = self.schedule.final[r]
    fresh = _run(self.schedule, final, _cached_reads(self.schedule, final, caches, offsets),
                 sources)
    return _write(self.schedule, final, fresh, caches, offsets)


@tf.autograph.experimental.do_not_convert  # Plain Python control flow, traced as is.
def sample(program, uniforms, cond):
  """Raster-order samples of a row-causal network, and the logits they were drawn with.

  Pixel i is set to `uniforms_i < sigmoid(logit_i(x_{<i}))`, the pixels not drawn yet being
  0., as a loop of full network passes would (see the module docstring). Build the graph
  once (`tf.function`): eagerly, every loop iteration runs op by op.

  Args:
    program: Python `list` of `Node`, the network (see `Node`), with the sources `IMAGE`
      (one channel) and `COND` and the output `LOGITS` (one channel).
    uniforms: `Tensor` `[B, H, W, 1]` in [0, 1).
    cond: `Tensor` `[B, H, W, C]`, the conditioning map.

  Returns:
    x: `Tensor` `[B, H, W, 1]` of 0. and 1., the samples.
    logits: `Tensor` `[B, H, W, 1]`, the logit that each pixel was drawn with.
  """
  height, width = uniforms.shape[1], uniforms.shape[2]
  batch = uniforms.shape[0] or tf.shape(uniforms)[0]
  schedule = Schedule(program, height)
  pad, period = schedule.pad, schedule.period
  read_later = {source for node in program for source, _ in node.inputs}
  caches = {node.name: _cache(node, batch, width, pad, schedule.planned_rows)
            for node in program if node.name in read_later}
  drawn_logits = tf.TensorArray(tf.float32, size=height,
                                element_shape=[tf.get_static_value(batch), width, 1])
  draw_row = _RowDrawer(schedule, uniforms, cond)
  start, groups = schedule.start, schedule.groups
  for r in range(-1, start):
    caches, drawn_logits = draw_row(r, caches, drawn_logits)
  if groups:
    def draw_group(group, caches, drawn_logits):
      for r in range(start, start + period):
        caches, drawn_logits = draw_row(r, caches, drawn_logits, group)
      return group + 1, caches, drawn_logits

    _, caches, drawn_logits = tf.while_loop(lambda group, *_: group < groups, draw_group,
                                            (tf.constant(0), caches, drawn_logits))
  for r in range(start + groups * period, height):
    caches, drawn_logits = draw_row(r, caches, drawn_logits)
  image = tf.transpose(caches[IMAGE].gather(tf.range(pad, pad + height)), [1, 0, 2, 3])
  return (image + 1.) / 2., tf.transpose(drawn_logits.stack(), [1, 0, 2, 3])
