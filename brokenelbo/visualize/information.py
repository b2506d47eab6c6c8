r"""The information picture of a sweep: R, I_e, H - D, the marginal gap and [E, G] against beta.

Section 2 of [1] brackets I_e(X; Z) of p*(x) e(z|x) (eq. 1) by the rate and the distortion,
H the data entropy, the gap above being the KL of the aggregate posterior e(z) from the
marginal m(z) [2]; Appendix C brackets the generative model's I_d:

  H - D <= I_e(X; Z) <= R,    R - I_e = KL(e(z) || m(z))          (Section 2, eqs. 2-3)
  E <= I_d(X; Z) <= G.                                        (Appendix C, eqs. 6-9)

`information_figure` draws these for the runs of a sweep's results CSV that carry the
information suite (`experiments.sweep` writes its columns, `evaluation.suite` computes
them; `COLUMNS` are the ones read), one panel per family present, in the order of
`FAMILIES`, three to a row, against the beta of D + beta R on a log axis, with log N
dashed, [E, G] shaded, H the sweep's best -ELBO, and a symmetric-log vertical axis
(linear within +-`LINEAR_NATS`). Beta = 0 runs are left out with a warning. matplotlib is
imported by the functions that draw. Each line, the axis and the styles: docs/methods.md.

#### References

[1]: Alexander A. Alemi, Ben Poole, Ian Fischer, Joshua V. Dillon, Rif A. Saurous, Kevin
     Murphy. Fixing a Broken ELBO. In _International Conference on Machine Learning_,
     2018. https://arxiv.org/abs/1711.00464
[2]: Matthew D. Hoffman, Matthew J. Johnson. ELBO surgery. NIPS Workshop on Advances in
     Approximate Bayesian Inference, 2016.
"""

import math

from absl import logging
import numpy as np

from brokenelbo.models.families import FAMILIES  # pylint: disable=g-importing-member

# The suite's columns that the figure draws; a run is drawn when its row fills them all.
COLUMNS = ('mutual_information', 'log_num_examples', 'marginal_kl', 'generative_e',
           'generative_g')
# The lines of each panel: (key, colour); `h_minus_d` is H - distortion, the others are
# columns.
LINES = (('rate', 'tab:blue'), ('mutual_information', 'tab:orange'),
         ('h_minus_d', 'tab:green'), ('marginal_kl', 'tab:red'))
BAND_COLOR = 'tab:purple'
# Line styles of the annealing lengths > 0, ascending (no annealing: solid).
ANNEAL_STYLES = ('-.', ':', (0, (5, 1, 1, 1, 1, 1)), (0, (1, 3)))
PANEL_COLUMNS = 3
# The vertical axis is linear within +-LINEAR_NATS and logarithmic beyond.
LINEAR_NATS = 10.


def suite_runs(runs):
  """The runs (`rd_plane.Point`, read with `extra_columns=COLUMNS`) that have the suite."""
  return [run for run in runs if all(name in run.extra for name in COLUMNS)]


def line_label(key, anneal):
  """The matplotlib label of a panel's line of `key` (one of `LINES`, `'log_num_examples'`,
  or `'generative'` for the band) for the runs with annealing length `anneal`."""
  return key if not anneal else f'{key}, anneal {anneal:g}'


def _value(run, key, entropy):
  if key == 'rate':
    return run.rate
  if key == 'h_minus_d':
    return entropy - run.distortion
  return run.extra[key]


def _anneal_style(anneals, anneal):
  """Line style and whether markers are filled, for one annealing length of `anneals`."""
  if not anneal:
    return '-', True
  lengths = [a for a in anneals if a]
  return ANNEAL_STYLES[lengths.index(anneal) % len(ANNEAL_STYLES)], False


def by_beta(runs, key, entropy):
  """`(betas, means)`: the distinct betas of `runs` ascending, and the mean of `key` over
  the runs at each."""
  betas = sorted({run.beta for run in runs})
  means = [float(np.mean([_value(run, key, entropy) for run in runs if run.beta == beta]))
           for beta in betas]
  return np.array(betas, np.float64), np.array(means, np.float64)


def plot_family(ax, runs, entropy, anneals):
  """One family's panel: the `LINES`, log N and the band [E, G] against beta.

  Args:
    ax: matplotlib `Axes`.
    runs: `list` of `rd_plane.Point` of one family, with the suite and beta > 0.
    entropy: Python `float`, H (the best -ELBO of the sweep).
    anneals: sorted `list` of the annealing lengths of the whole figure (for the styles).
  """
  for anneal in sorted({run.anneal for run in runs}):
    group = [run for run in runs if run.anneal == anneal]
    style, filled = _anneal_style(anneals, anneal)
    betas, lower = by_beta(group, 'generative_e', entropy)
    upper = by_beta(group, 'generative_g', entropy)[1]
    ax.fill_between(betas, lower, upper, color=BAND_COLOR, alpha=.18 if filled else .08,
                    hatch=None if filled else '//', linewidth=0.,
                    label=line_label('generative', anneal))
    for key, color in LINES:
      betas, means = by_beta(group, key, entropy)
      ax.plot(betas, means, linestyle=style, color=color, marker='o', markersize=4,
              markerfacecolor=color if filled else 'none', linewidth=1.3,
              label=line_label(key, anneal))
      if len(betas) < len(group):  # Several seeds at a beta: each run too.
        ax.scatter([run.beta for run in group], [_value(run, key, entropy) for run in group],
                   s=6, color=color, zorder=3)
  for cap in sorted({run.extra['log_num_examples'] for run in runs}):
    ax.axhline(cap, linestyle='--', color=dict(LINES)['mutual_information'], linewidth=.8,
               label=line_label('log_num_examples', 0))
  ax.set_xscale('log')
  ax.set_yscale('symlog', linthresh=LINEAR_NATS)
  low, high = ax.get_ylim()  # At least the linear range: ticks at -10, 0 and 10.
  ax.set_ylim(min(low, -LINEAR_NATS), max(high, LINEAR_NATS))
  ax.set_xlabel('beta')
  ax.set_ylabel(f'nats (linear within +-{LINEAR_NATS:g})')
  ax.grid(alpha=.3)


def _legend_handles(entropy, anneals):
  from matplotlib.lines import Line2D  # pylint: disable=g-import-not-at-top
  from matplotlib.patches import Patch  # pylint: disable=g-import-not-at-top
  colors = dict(LINES)
  names = {'rate': 'R (rate, test split)', 'mutual_information': 'I_e (N test examples)',
           'h_minus_d': f'H - D, H = best -ELBO = {entropy:.2f}\n(H estimated from above)',
           'marginal_kl': 'KL(e(z) || m(z)), the marginal gap'}
  handles = [Line2D([], [], color=colors[key], label=names[key]) for key, _ in LINES]
  handles.append(Line2D([], [], color=colors['mutual_information'], linestyle='--',
                        linewidth=.8, label='log N (cap of I_e)'))
  handles.append(Patch(color=BAND_COLOR, alpha=.3, label='[E, G] (generative, App. C)'))
  for anneal in anneals:
    style, filled = _anneal_style(anneals, anneal)
    handles.append(Line2D([], [], color='0.3', linestyle=style, marker='o',
                          markerfacecolor='0.3' if filled else 'none',
                          label='no annealing' if not anneal
                          else f'KL annealing, {anneal:g} epochs'))
  return handles


def information_figure(runs, title):
  """The information picture of a sweep, as a matplotlib `Figure`.

  Args:
    runs: `list` of `rd_plane.Point` of one data set's test split, read with
      `extra_columns=COLUMNS`: all of them set H, those with the suite are drawn.
    title: Python `str`, the figure's title.

  Raises:
    ValueError: if no run has the suite with beta > 0 (`plot` checks `suite_runs` first).
  """
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  from brokenelbo.visualize import rd_plane  # pylint: disable=g-import-not-at-top
  entropy = rd_plane.best_negative_elbo(runs)
  drawn = []
  for run in suite_runs(runs):
    if run.beta > 0.:
      drawn.append(run)
    else:
      logging.warning('information figure: leaving out %s (beta = %g has no place on a log '
                      'axis)', run.run_dir, run.beta)
  if not drawn:
    raise ValueError('no run with the information suite and beta > 0 to draw')
  families = [family for family in FAMILIES if any(run.family == family for run in drawn)]
  anneals = sorted({run.anneal for run in drawn})
  columns = min(len(families), PANEL_COLUMNS)
  rows = math.ceil(len(families) / columns)
  figure = Figure(figsize=(4.2 * columns + 3., 3.3 * rows + .8), dpi=rd_plane.FIGURE_DPI,
                  layout='constrained')
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  betas = [run.beta for run in drawn]
  for ax, family in zip(axes, families):
    members = [run for run in drawn if run.family == family]
    plot_family(ax, members, entropy, anneals)
    ax.set_xlim(min(betas) / 1.5, max(betas) * 1.5)  # The same betas in every panel.
    names = '/'.join(rd_plane.PART_NAMES[part][value] for part, value in
                     zip(('encoder', 'decoder', 'marginal'), family))
    ax.set_title(f'{family}: {names}', fontsize=9)
  for ax in axes[len(families):]:
    ax.set_visible(False)
  figure.legend(handles=_legend_handles(entropy, anneals), loc='outside right upper',
                fontsize=8)
  figure.suptitle(f'{title}: information against beta ({len(drawn)} runs)')
  return figure
