r"""Figure 3 of [1] from a sweep's results CSV: the rate-distortion plane.

`python -m brokenelbo.plot` draws it from a CSV of a header and one row per run, with
(at least) the columns, in nats (others only when asked for: `extra_columns`)

    family, encoder, decoder, marginal, dataset, beta, anneal, seed, run_dir,
    rate, distortion, elbo                      (--split=test, the default)
    train_rate, train_distortion, train_elbo    (--split=train)

`family` (a string from {-,+} x {-,+} x {-,+,v}) must equal `encoder + decoder + marginal`,
and `elbo` must equal `-(rate + distortion)` (against sign or column mix-ups); a run is
annealed when `anneal > 0` (epochs of KL annealing). A run whose R or D is not finite is
left out with a warning; anything else malformed is an error, as are mixed datasets.

`figure3a.png` has four panels, as in the paper: (i) every run, D against R (hollow markers
with KL annealing), the line D = H - R, the monotone Pareto frontier (staircase) and its
lower convex hull (dashed); (ii)-(iv) the frontier of the runs with each encoder, decoder,
marginal. `figure3b.png`: -ELBO = R + D against R for every run, with the level H. The
families' legend (a colour per encoder-decoder pair, a shade and marker per marginal) is
outside the axes. `H = min over runs of (R + D)`, the sweep's best -ELBO: `D = H - R` is the
data entropy bound `H - D <= R` of Section 2 at the best achieved ELBO, as in the paper, and
no run lies below it. Only numpy and matplotlib (Agg, `Figure` objects, no pyplot state).

[1]: Alexander A. Alemi, Ben Poole, Ian Fischer, Joshua V. Dillon, Rif A. Saurous, Kevin
     Murphy. Fixing a Broken ELBO. In _ICML_, 2018. https://arxiv.org/abs/1711.00464
"""

import math
import os
import types
from typing import Mapping, NamedTuple

from absl import logging
import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
import numpy as np

from brokenelbo import errors
from brokenelbo.utils import files

from brokenelbo.models.families import (  # pylint: disable=g-importing-member
    DECODERS, ENCODERS, FAMILIES, MARGINALS)
# Legend names of the parts (README, "The 12 families").
PART_NAMES = dict(
    encoder={'-': 'Gaussian', '+': 'Gaussian + IAF'},
    decoder={'-': 'factorized', '+': 'PixelCNN'},
    marginal={'-': 'N(0, I)', '+': 'MAF', 'v': 'VampPrior'})
SPLIT_COLUMNS = dict(test=('rate', 'distortion', 'elbo'),
                     train=('train_rate', 'train_distortion', 'train_elbo'))
TEXT_COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'run_dir')
NUMBER_COLUMNS = ('beta', 'anneal', 'seed')
# `elbo` must equal -(rate + distortion) to this relative tolerance (at least 1e-3 nats): the
# CSV may round its numbers, and a sign or column mix-up is off by far more.
ELBO_TOLERANCE = 1e-3
FIGURE_DPI = 100


class Point(NamedTuple):
  """One row of the results CSV, for one split: a point of the rate-distortion plane.

  Attributes:
    family: Python `str`, e.g. `'-+v'`.
    encoder: Python `str`, `'-'` or `'+'`.
    decoder: Python `str`, `'-'` or `'+'`.
    marginal: Python `str`, `'-'`, `'+'` or `'v'`.
    dataset: Python `str`, e.g. `'static_mnist'`.
    beta: Python `float`, the weight of R in the training objective D + beta R.
    anneal: Python `float`, epochs of KL annealing (0: none).
    seed: Python `int`.
    rate: Python `float`, R in nats on the chosen split.
    distortion: Python `float`, D in nats on the chosen split.
    run_dir: Python `str`, the run's checkpoints (for figures drawn from models).
    extra: `Mapping` from each of `read_results`' `extra_columns` that the row fills in to
      its `float` (empty unless asked for).
  """
  family: str
  encoder: str
  decoder: str
  marginal: str
  dataset: str
  beta: float
  anneal: float
  seed: int
  rate: float
  distortion: float
  run_dir: str
  extra: Mapping[str, float] = types.MappingProxyType({})


def read_results(path, split='test', dataset=None, extra_columns=()):
  """Reads the runs of a sweep's results CSV.

  Args:
    path: Python `str`, the CSV.
    split: Python `str`, `'test'` or `'train'`: which rate and distortion columns to read.
    dataset: Python `str` or `None`: keep only the runs on this dataset; `None` requires the
      CSV to hold a single dataset.
    extra_columns: Python `tuple` of `str`, optional number columns to read into
      `Point.extra`: a column the CSV lacks, or an empty cell, is left out of it.

  Returns:
    A `list` of `Point`, in file order, without the runs whose R or D is not finite.

  Raises:
    errors.UserError: the file is missing or unreadable, is empty, lacks a column, has a
      malformed value, or mixes datasets with `dataset=None`; or no run is left.
  """
  rate_column, distortion_column, _ = SPLIT_COLUMNS[split]
  header, rows = _read_csv(path, TEXT_COLUMNS + NUMBER_COLUMNS + SPLIT_COLUMNS[split])
  extra = {name: header.index(name) for name in extra_columns if name in header}
  runs, skipped = _finite_runs(path, header, rows, split, extra)
  datasets = sorted({run.dataset for run in runs})
  if dataset is not None:
    runs = [run for run in runs if run.dataset == dataset]
    if not runs:
      raise errors.UserError(f'results {path} have no finite run on dataset {dataset!r}; '
                             f'they have {datasets}')
  elif len(datasets) > 1:
    raise errors.UserError(f'results {path} mix the datasets {datasets}; choose one with '
                           '--dataset')
  if not runs:
    raise errors.UserError(f'results {path} have no run with finite {rate_column} and '
                           f'{distortion_column} ({len(rows)} rows, {skipped} not finite)')
  return runs


def _read_csv(path, required):
  """The header (stripped names) and the non-empty rows `(line, fields)` of a results CSV
  that has every `required` column, each once, and at least one row (`files.read_csv`)."""
  header, rows = files.read_csv(path, 'results', required)
  if not rows:
    raise errors.UserError(f'results {path} have a header and no runs')
  return header, rows


def _finite_runs(path, header, rows, split, extra):
  """The `Point`s of `rows` whose R and D are finite, and how many were not (each with a
  warning); `extra` maps the extra columns to their positions."""
  rate_column, distortion_column, elbo_column = SPLIT_COLUMNS[split]
  index = {name: header.index(name)
           for name in TEXT_COLUMNS + NUMBER_COLUMNS + SPLIT_COLUMNS[split]}
  runs, skipped = [], 0
  for line, row in rows:
    run, elbo = _parse_row(row, index, split, where=f'{path} line {line}')
    run = run._replace(extra=_parse_extra(row, extra, where=f'{path} line {line}'))
    if not (math.isfinite(run.rate) and math.isfinite(run.distortion)):
      skipped += 1
      logging.warning('%s line %d: leaving out the run %s (R = %s, D = %s)', path, line,
                      run.run_dir, run.rate, run.distortion)
      continue
    if not abs(elbo + run.rate + run.distortion) <= ELBO_TOLERANCE * max(1., abs(elbo)):
      raise errors.UserError(f'{path} line {line}: {elbo_column} = {elbo} is not '
                             f'-({rate_column} + {distortion_column}) = '
                             f'{-(run.rate + run.distortion)}')
    runs.append(run)
  return runs, skipped


def _parse_row(row, index, split, where):
  """One CSV row as a `Point` and its ELBO; `index` maps column names to positions."""
  text = {name: row[i].strip() for name, i in index.items()}
  numbers = {name: files.csv_number(text[name], name, where, int if name == 'seed' else float)
             for name in NUMBER_COLUMNS + SPLIT_COLUMNS[split]}
  rate, distortion, elbo = (numbers[name] for name in SPLIT_COLUMNS[split])
  run = Point(family=text['family'], encoder=text['encoder'], decoder=text['decoder'],
            marginal=text['marginal'], dataset=text['dataset'], beta=numbers['beta'],
            anneal=numbers['anneal'], seed=numbers['seed'], rate=rate, distortion=distortion,
            run_dir=text['run_dir'])
  if run.family not in FAMILIES:
    raise errors.UserError(f'{where}: unknown family {run.family!r}; the families are '
                           f'{list(FAMILIES)}')
  if run.family != run.encoder + run.decoder + run.marginal:
    raise errors.UserError(f'{where}: family {run.family!r} disagrees with encoder, decoder, '
                           f'marginal {run.encoder!r}, {run.decoder!r}, {run.marginal!r}')
  return run, elbo


def _parse_extra(row, index, where):
  """`{name: float}` of the non-empty cells of the columns `index` maps to positions."""
  values = {name: files.csv_number(row[i], name, where, empty_ok=True)
            for name, i in index.items()}
  values = {name: value for name, value in values.items() if value is not None}
  return types.MappingProxyType(values) if values else Point._field_defaults['extra']


def pareto_frontier(points):
  """The monotone Pareto frontier: the points not dominated when minimizing both coordinates.

  `q` dominates `p` when `q <= p` in both coordinates and `q != p`. Of several equal
  non-dominated points one is kept, so along the frontier the first coordinate strictly
  increases and the second strictly decreases.

  Args:
    points: `float` array-like `[n, 2]`, `(R, D)` pairs.

  Returns:
    `float64` array `[m, 2]`, the frontier sorted by its first coordinate (`[0, 2]` when
    `n = 0`).
  """
  points = np.asarray(points, np.float64).reshape([-1, 2])
  order = np.lexsort((points[:, 1], points[:, 0]))  # By R, then by D.
  frontier = []
  for r, d in points[order]:
    if not frontier or d < frontier[-1][1]:
      frontier.append((r, d))
  return np.array(frontier, np.float64).reshape([-1, 2])


def frontier_runs(runs):
  """The runs on the Pareto frontier of their (R, D) (`pareto_frontier`), by increasing R;
  of runs at the same point, the first. Figure 6 of the paper shows the models along it.

  Args:
    runs: `list` of `Point`.

  Returns:
    `list` of `Point`.
  """
  frontier = {tuple(p) for p in pareto_frontier([(r.rate, r.distortion) for r in runs])}
  chosen = {}
  for run in runs:
    point = (run.rate, run.distortion)
    if point in frontier and point not in chosen:
      chosen[point] = run
  return [chosen[point] for point in sorted(chosen)]


def _cross(o, a, b):
  """The z component of `(a - o) x (b - o)`: positive when `o, a, b` turn left."""
  return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def lower_convex_hull(points):
  """The lower convex hull of the Pareto frontier of `points` (Andrew's monotone chain).

  This is the boundary of the convex hull of everything the points dominate: the best
  trade-off reachable by mixing runs. Its vertices are frontier points; collinear points
  are not vertices, so the slopes of its edges strictly increase (all negative).

  Args:
    points: `float` array-like `[n, 2]`, `(R, D)` pairs.

  Returns:
    `float64` array `[k, 2]`, the hull's vertices sorted by their first coordinate, from the
    frontier's first point to its last.
  """
  hull = []
  for point in pareto_frontier(points):
    while len(hull) >= 2 and _cross(hull[-2], hull[-1], point) <= 0.:
      hull.pop()
    hull.append(point)
  return np.array(hull, np.float64).reshape([-1, 2])


def points_of(runs):
  """`float64` array `[n, 2]` of the runs' `(rate, distortion)`."""
  return np.array([(run.rate, run.distortion) for run in runs], np.float64).reshape([-1, 2])


def best_negative_elbo(runs):
  """`H`: the lowest `-ELBO = R + D` over the runs, in nats."""
  return float(np.min(points_of(runs).sum(axis=1)))


def group_frontiers(runs, part):
  """The Pareto frontier of the runs sharing each value of one part of the family.

  Args:
    runs: `list` of `Point`.
    part: Python `str`, `'encoder'`, `'decoder'` or `'marginal'`.

  Returns:
    `dict` from each value of `part` present in `runs`, in the order of `PART_NAMES[part]`,
    to its `pareto_frontier`.
  """
  return {value: pareto_frontier(points_of([run for run in runs
                                            if getattr(run, part) == value]))
          for value in PART_NAMES[part] if any(getattr(run, part) == value for run in runs)}


def _family_style(family):
  """Colour and marker of a family.

  A hue per (encoder, decoder) pair, a shade and a marker per marginal: tab20c's blues,
  oranges, greens and purples, three shades each, dark to light for `-`, `+`, `v`.
  """
  encoder, decoder, marginal = family
  hue = 2 * ENCODERS.index(encoder) + DECODERS.index(decoder)
  shade = MARGINALS.index(marginal)
  color = matplotlib.colormaps['tab20c'].colors[4 * hue + shade]
  return color, ('o', 's', '^')[shade]


def scatter_runs(ax, runs, y_of):
  """Every run as a marker at `(R, y_of(R, D))`, by family, hollow when annealed.

  Args:
    ax: matplotlib `Axes`.
    runs: `list` of `Point`.
    y_of: function of the arrays `R, D` giving the vertical coordinates.

  Returns:
    The `list` of legend handles: one per family present, then filled and hollow.
  """
  handles = []
  for family in FAMILIES:
    members = [run for run in runs if run.family == family]
    if not members:
      continue
    color, marker = _family_style(family)
    for annealed in (False, True):
      chosen = points_of([run for run in members if (run.anneal > 0.) == annealed])
      if len(chosen):
        ax.scatter(chosen[:, 0], y_of(chosen[:, 0], chosen[:, 1]), s=22, marker=marker,
                   facecolors='none' if annealed else color, edgecolors=color,
                   linewidths=1., zorder=3)
    handles.append(Line2D([], [], linestyle='none', marker=marker, color=color,
                          label=family))
  return handles + [
      Line2D([], [], linestyle='none', marker='o', color='0.3', label='no annealing'),
      Line2D([], [], linestyle='none', marker='o', color='0.3', markerfacecolor='none',
             label='KL annealing')]


def _draw_frontier(ax, frontier, right, **kwargs):
  """The frontier as a staircase: each run covers every rate up to the next run's."""
  r = np.append(frontier[:, 0], right)
  d = np.append(frontier[:, 1], frontier[-1, 1])
  ax.step(r, d, where='post', **kwargs)


def _draw_entropy_line(ax, entropy):
  ax.plot([0., entropy], [entropy, 0.], ':', color='0.4', linewidth=1.,
          label=f'D = H - R, H = {entropy:.2f}')


def _rd_axes(ax, runs, title):
  """Labels `ax` and sets its limits from 0 to past the runs and `H`; returns the right end."""
  points = points_of(runs)
  entropy = best_negative_elbo(runs)
  right = 1.05 * max(points[:, 0].max(), entropy)
  ax.set_xlim(0., right)
  ax.set_ylim(0., 1.05 * max(points[:, 1].max(), entropy))
  ax.set_xlabel('rate R (nats)')
  ax.set_ylabel('distortion D (nats)')
  ax.set_title(title, fontsize=10)
  ax.grid(alpha=.3)
  return right


def plot_all_runs(ax, runs):
  """Figure 3a (i): every run, the line `D = H - R`, the frontier and its convex hull.

  Returns:
    The families' legend handles (see `scatter_runs`), for a legend outside the axes.
  """
  right = _rd_axes(ax, runs, f'(i) all runs ({len(runs)})')
  handles = scatter_runs(ax, runs, lambda r, d: d)
  _draw_entropy_line(ax, best_negative_elbo(runs))
  frontier = pareto_frontier(points_of(runs))
  _draw_frontier(ax, frontier, right, color='k', linewidth=1.2, label='Pareto frontier')
  hull = lower_convex_hull(frontier)
  ax.plot(hull[:, 0], hull[:, 1], '--', color='tab:red', linewidth=1.2, label='convex hull',
          zorder=4)
  # Below the line D = H - R no run can be: the corner is free for the legend.
  ax.legend(fontsize=7, loc='lower left')
  return handles


def plot_part_frontiers(ax, runs, part, title):
  """Figure 3a (ii)-(iv): one frontier per value of `part`, over all runs in grey."""
  right = _rd_axes(ax, runs, title)
  points = points_of(runs)
  ax.scatter(points[:, 0], points[:, 1], s=8, color='0.8', zorder=1)
  _draw_entropy_line(ax, best_negative_elbo(runs))
  colors = matplotlib.colormaps['tab10'].colors
  for i, (value, frontier) in enumerate(group_frontiers(runs, part).items()):
    _draw_frontier(ax, frontier, right, color=colors[i], linewidth=1.5,
                   label=f'{part} {value}: {PART_NAMES[part][value]}')
  ax.legend(fontsize=7, loc='upper right')


def plot_figure3a(axes, runs):
  """Figure 3a: `axes` is four matplotlib axes, for panels (i) to (iv); returns handles."""
  handles = plot_all_runs(axes[0], runs)
  for ax, part, numeral in zip(axes[1:], ('encoder', 'decoder', 'marginal'),
                               ('ii', 'iii', 'iv')):
    plot_part_frontiers(ax, runs, part, f'({numeral}) frontier by {part}')
  return handles


def plot_figure3b(ax, runs):
  """Figure 3b: `-ELBO = R + D` against `R` for every run, and the level `H`.

  Returns:
    The families' legend handles (see `scatter_runs`), for a legend outside the axes.
  """
  entropy = best_negative_elbo(runs)
  handles = scatter_runs(ax, runs, lambda r, d: r + d)
  ax.axhline(entropy, linestyle=':', color='0.4', linewidth=1.,
             label=f'H = best -ELBO = {entropy:.2f}')
  # R + D >= R: nothing lies below the diagonal, so the lower right is free.
  ax.legend(fontsize=7, loc='lower right')
  ax.set_xlim(left=0.)
  ax.set_xlabel('rate R (nats)')
  ax.set_ylabel('-ELBO = R + D (nats)')
  ax.set_title(f'(b) -ELBO against rate ({len(runs)} runs)', fontsize=10)
  ax.grid(alpha=.3)
  return handles


def _family_legend(figure, handles):
  figure.legend(handles=handles, loc='outside right upper', fontsize=8, title='family')


def figure3(runs, title):
  """The Figure 3 files: `{name: draw}`, each `draw()` returning a matplotlib `Figure`."""

  def figure3a():
    figure = Figure(figsize=(21., 5.2), dpi=FIGURE_DPI, layout='constrained')
    _family_legend(figure, plot_figure3a(figure.subplots(1, 4), runs))
    figure.suptitle(f'(a) {title}: distortion against rate')
    return figure

  def figure3b():
    figure = Figure(figsize=(7.2, 5.2), dpi=FIGURE_DPI, layout='constrained')
    _family_legend(figure, plot_figure3b(figure.subplots(), runs))
    figure.suptitle(title)
    return figure

  return dict(figure3a=figure3a, figure3b=figure3b)


def write_figures(figures, output_dir, suffix='', formats=('png',), overwrite=False):
  """Draws and saves figures, refusing to replace any file unless `overwrite`.

  Every path is checked before anything is drawn, so a refusal leaves the folder as it was;
  each file is written to a temporary name in `output_dir`, then renamed.

  Args:
    figures: `dict` from a file name stem to a function returning a matplotlib `Figure`.
    output_dir: Python `str`, the folder (made if missing).
    suffix: Python `str`, appended to every stem, e.g. `'_train'`.
    formats: Python `tuple` of file extensions, e.g. `('png', 'pdf')`.
    overwrite: Python `bool`, whether existing files may be replaced.

  Returns:
    The `list` of paths written.

  Raises:
    errors.UserError: if a file exists and `overwrite` is false, a path is a folder, or
      `output_dir` cannot be written.
  """
  paths = {stem: [os.path.join(output_dir, f'{stem}{suffix}.{ext}') for ext in formats]
           for stem in figures}
  existing = [path for stem in figures for path in paths[stem] if os.path.exists(path)]
  folders = [path for path in existing if os.path.isdir(path)]
  if folders:
    raise errors.UserError(f'{", ".join(folders)}: a directory, not a figure file')
  if existing and not overwrite:
    raise errors.UserError(f'{", ".join(existing)} exist; pass --overwrite to replace them')
  files.check_writable_dir(output_dir, 'output_dir')  # Makes it; before anything is drawn.
  written = []
  for stem, draw in figures.items():
    figure = draw()
    for path, ext in zip(paths[stem], formats):
      tmp = path + '.tmp'
      figure.savefig(tmp, format=ext)
      os.replace(tmp, path)
      written.append(path)
  return written
