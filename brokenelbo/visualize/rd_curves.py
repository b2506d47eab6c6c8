r"""The AIS rate-distortion curves of a sweep's decoders, in the plane of Figure 3 of [1].

For a decoder d(x|z) and marginal m(z), the encoder p_beta(z|x), proportional to
m(z) d(x|z)^beta, has the least D + (1 / beta) R of any encoder; its rate and distortion
(R_beta, D_beta) over beta trace the decoder's rate-distortion curve [2], below which no
encoder of that decoder and marginal lies. `python -m brokenelbo.rd_curve` records it by
annealed importance sampling in the run's `rd_curve.json` (`evaluation.rd_curve`).

`rd_curves_figure` draws the runs of a sweep's results CSV whose record of the split was
made at the step the run finished (`curve_records`), a panel per family present, in the
order of `FAMILIES`, three a row:

- each run's curve: (R_beta, D_beta) at every stored beta, joined in the order of beta,
  with their standard errors over the annealed examples as error bars; a ring marks the
  point at beta = 1 / beta', the one that minimises the run's own objective D + beta' R;
- the run's own encoder on the same examples (`encoder_rate`, `encoder_distortion`), a
  star in the curve's colour, on or above the curve up to the estimates' noise;
- the sweep's monotone Pareto frontier (`rd_plane.pareto_frontier` of the R and D of every
  run in the CSV), grey, for reference.

The axes are those of Figure 3: rate R horizontal, distortion D vertical, nats. A curve
and its star are means over a few examples evenly spaced through the split, the frontier
over the whole split: they may stand apart by the examples' spread. Only numpy and
matplotlib (`Figure` objects, no pyplot state).

#### References

[1]: Alexander A. Alemi, Ben Poole, Ian Fischer, Joshua V. Dillon, Rif A. Saurous, Kevin
     Murphy. Fixing a Broken ELBO. In _International Conference on Machine Learning_,
     2018. https://arxiv.org/abs/1711.00464
[2]: Sicong Huang, Alireza Makhzani, Yanshuai Cao, Roger Grosse. Evaluating Lossy
     Compression Rates of Deep Generative Models. In _International Conference on Machine
     Learning_, 2020. https://arxiv.org/abs/2008.06653
"""

import math
import os
import re

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
import numpy as np

from brokenelbo import errors
from brokenelbo.models.families import FAMILIES  # pylint: disable=g-importing-member
from brokenelbo.training import run_record
from brokenelbo.utils import files
from brokenelbo.visualize import rd_plane

# The results CSV's column (`experiments.sweep.AIS_COLUMNS`) that marks a CSV whose sweep
# reads the runs' curves: `plot` notes a missing figure only for such a CSV.
CSV_COLUMN = 'ais_nll'
PANEL_COLUMNS = 3
FRONTIER_COLOR = '0.55'
# A stored beta's rate in a record (`ais_rate_b<beta>`, beta as `{:g}` writes it).
_RATE_KEY = re.compile(r'ais_rate_b([0-9]+(?:\.[0-9]*)?(?:e[+-]?[0-9]+)?)$')
# The numbers of each stored beta that are drawn: (quantity, suffix).
_QUANTITIES = (('rate', ''), ('rate', '_stderr'), ('distortion', ''), ('distortion', '_stderr'))


def curve_records(runs, split):
  """`[(run, curve)]` for the runs (`rd_plane.Point`) whose `rd_curve.json` holds the curve
  of `split` made at the step the run finished (`run_record.final_rd_curve`), in order;
  each curve as `curve_of` gives it.

  Raises:
    UserError: if a run's record cannot be read, or lacks a number that is drawn.
  """
  found = []
  for run in runs:
    record = run_record.final_rd_curve(run.run_dir, split)
    if record is not None:
      found.append((run, curve_of(record, os.path.join(run.run_dir,
                                                       run_record.RD_CURVE_RECORD))))
  return found


def curve_of(record, path):
  """The numbers drawn of a record of `rd_curve.json`.

  Args:
    record: `dict`, one split's record (`evaluation.rd_curve.record_rd_curve`).
    path: Python `str`, its file, for messages.

  Returns:
    `dict`: `float64` arrays `beta` (ascending), `rate`, `rate_stderr`, `distortion`,
    `distortion_stderr` (NaN for a `null`), and the floats `encoder_rate` and
    `encoder_distortion`.

  Raises:
    UserError: naming `path`, if the record has no stored beta, or one of these numbers is
      missing or not a number.
  """
  keys = {float(m.group(1)): m.group(1) for m in map(_RATE_KEY.match, record) if m}
  if not keys:
    raise errors.UserError(f'rate-distortion curve record {path}: no key ais_rate_b<beta>')
  betas = sorted(keys)
  names = {(quantity + end, beta): f'ais_{quantity}_b{keys[beta]}{end}'
           for quantity, end in _QUANTITIES for beta in betas}
  schema = dict.fromkeys([*names.values(), 'encoder_rate', 'encoder_distortion'],
                         files.NUMBER_OR_NULL)
  files.check_schema(record, schema, 'rate-distortion curve record', path)
  number = lambda name: math.nan if record[name] is None else float(record[name])
  curve = {quantity + end: np.array([number(names[quantity + end, beta]) for beta in betas],
                                     np.float64)
           for quantity, end in _QUANTITIES}
  return dict(curve, beta=np.array(betas, np.float64), encoder_rate=number('encoder_rate'),
              encoder_distortion=number('encoder_distortion'))


def run_label(run):
  """A run's name in its panel: its beta', and its annealing and seed where not 0."""
  label = f"beta' {run.beta:g}"
  if run.anneal:
    label += f', anneal {run.anneal:g}'
  return label + (f', seed {run.seed}' if run.seed else '')


def plot_family(ax, drawn, frontier):
  """One family's panel: each run's curve and encoder, and the sweep's frontier.

  Args:
    ax: matplotlib `Axes`.
    drawn: `list` of `(run, curve)` of one family (`curve_records`).
    frontier: `float64` array `[m, 2]`, the sweep's Pareto frontier (`pareto_frontier`).

  Returns:
    The `list` of the curves' legend handles, one per run.
  """
  colors = matplotlib.colormaps['tab10'].colors
  handles = []
  points = [frontier]
  for i, (run, curve) in enumerate(drawn):
    color, label = colors[i % len(colors)], run_label(run)
    handles += ax.plot(curve['rate'], curve['distortion'], '-o', color=color, markersize=3,
                       linewidth=1.2, label=label, zorder=3)
    ax.errorbar(curve['rate'], curve['distortion'], xerr=curve['rate_stderr'],
                yerr=curve['distortion_stderr'], fmt='none', ecolor=color, elinewidth=.8,
                capsize=2., zorder=3)
    own = np.isclose(curve['beta'] * run.beta, 1.)  # beta = 1 / beta'.
    ax.plot(curve['rate'][own], curve['distortion'][own], 'o', markersize=9,
            markerfacecolor='none', markeredgecolor=color, label=f'{label}, beta = 1/beta\'')
    ax.plot([curve['encoder_rate']], [curve['encoder_distortion']], '*', color=color,
            markersize=10, markeredgecolor='k', markeredgewidth=.4,
            label=f'{label}, encoder', zorder=4)
    points += [np.stack([curve['rate'], curve['distortion']], axis=1),
               [[curve['encoder_rate'], curve['encoder_distortion']]]]
  points = np.concatenate(points)
  points = points[np.isfinite(points).all(axis=1)]
  right = 1.05 * points[:, 0].max()
  if len(frontier):
    ax.step(np.append(frontier[:, 0], right), np.append(frontier[:, 1], frontier[-1, 1]),
            where='post', color=FRONTIER_COLOR, linewidth=1.2, label='Pareto frontier',
            zorder=2)
  ax.set_xlim(min(0., points[:, 0].min()), right)
  ax.set_ylim(min(0., points[:, 1].min()), 1.05 * points[:, 1].max())
  ax.set_xlabel('rate R (nats)')
  ax.set_ylabel('distortion D (nats)')
  ax.grid(alpha=.3)
  return handles


def _legend_handles():
  """What the marks mean, for the figure's legend."""
  return [Line2D([], [], color='0.3', marker='o', markersize=3,
                 label='AIS curve (R_beta, D_beta), +- standard errors'),
          Line2D([], [], color='0.3', marker='o', markersize=9, markerfacecolor='none',
                 linestyle='none', label="curve at beta = 1 / beta'\n(the run's objective)"),
          Line2D([], [], color='0.3', marker='*', markersize=10, linestyle='none',
                 label="the run's encoder,\nsame examples"),
          Line2D([], [], color=FRONTIER_COLOR, label="the sweep's Pareto frontier\n"
                                                     '(whole split)')]


def rd_curves_figure(runs, curves, title):
  """The decoders' rate-distortion curves of a sweep, as a matplotlib `Figure`.

  Args:
    runs: `list` of `rd_plane.Point`, every run of the CSV on one split: their frontier is
      drawn.
    curves: `list` of `(run, curve)`, the runs drawn (`curve_records`), at least one.
    title: Python `str`, the figure's title.

  Raises:
    ValueError: if `curves` is empty (`plot` checks `curve_records` first).
  """
  if not curves:
    raise ValueError('no run with a rate-distortion curve to draw')
  frontier = rd_plane.pareto_frontier(rd_plane.points_of(runs))
  families = [family for family in FAMILIES if any(run.family == family for run, _ in curves)]
  columns = min(len(families), PANEL_COLUMNS)
  rows = math.ceil(len(families) / columns)
  figure = Figure(figsize=(4.4 * columns + 3., 3.6 * rows + .8), dpi=rd_plane.FIGURE_DPI,
                  layout='constrained')
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax, family in zip(axes, families):
    handles = plot_family(ax, [(run, c) for run, c in curves if run.family == family],
                          frontier)
    names = '/'.join(rd_plane.PART_NAMES[part][value] for part, value in
                     zip(('encoder', 'decoder', 'marginal'), family))
    ax.set_title(f'{family}: {names}', fontsize=9)
    ax.legend(handles=handles, fontsize=7)
  for ax in axes[len(families):]:
    ax.set_visible(False)
  figure.legend(handles=_legend_handles(), loc='outside right upper', fontsize=8)
  figure.suptitle(f'{title}: AIS rate-distortion curves ({len(curves)} runs)', fontsize=10)
  return figure
