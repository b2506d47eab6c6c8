r"""Figures 3, 4, 5 and 6 of the paper, and the information picture, from a sweep's results
CSV (`visualize.rd_plane`, `visualize.grids`, `visualize.information`).

  python -m brokenelbo.plot --results=sweep.csv --output_dir=figures
  python -m brokenelbo.plot --results=sweep.csv --output_dir=figures --split=train --pdf
  python -m brokenelbo.plot --results=sweep.csv --output_dir=figures --figure4=-+v:0.1,-+v:1
  python -m brokenelbo.plot --results=sweep.csv --output_dir=figures --figure5=1
  python -m brokenelbo.plot --results=sweep.csv --output_dir=figures --figure6 \
      --checkpoints_dir=runs/retrained

`visualize.rd_plane` documents the CSV's columns and each figure. With the test split, the
runs that carry the sweep's information suite (`experiments.sweep`) are also drawn as
`information.png`: R, I_e, H - D, the marginal gap and [E, G] against beta, a panel per
family (`visualize.information`); a CSV without them gets a one-line note instead. The
runs whose `rd_curve.json` holds the split's AIS rate-distortion curve (`python -m
brokenelbo.rd_curve`) are drawn as `rd_curves.png`: each decoder's curve, its encoder's
point and the sweep's Pareto frontier, a panel per family (`visualize.rd_curves`); a CSV
with the AIS columns (`experiments.sweep.AIS_COLUMNS`) and no such run gets a note
instead. No file is replaced unless `--overwrite` is given; the CSV (each cell a number
where one is due, named by line and column on error), the runs' curve records and every
output path are checked before anything is drawn.
"""

import os
import sys

from absl import flags
import gin

from brokenelbo import errors
from brokenelbo.training import run_record
from brokenelbo.utils import cli
from brokenelbo.utils import files
from brokenelbo.visualize import information
from brokenelbo.visualize import rd_curves
from brokenelbo.visualize import rd_plane

FLAGS = flags.FLAGS


def select_run(runs, spec, checkpoints_dir=None, split='test'):
  """The run named by `spec`, 'FAMILY:BETA[:ANNEAL[:SEED]]' (anneal and seed default 0),
  whose checkpoints must still be in its `run_dir`."""
  parts = spec.split(':')
  try:
    family, beta = parts[0], float(parts[1])
    anneal = float(parts[2]) if len(parts) > 2 else 0.
    seed = int(parts[3]) if len(parts) > 3 else 0
  except (IndexError, ValueError):
    raise errors.UserError(f'--figure4 entries are FAMILY:BETA[:ANNEAL[:SEED]], got {spec!r}'
                           ) from None
  matches = [run for run in runs if (run.family, run.beta, run.anneal, run.seed) ==
             (family, beta, anneal, seed)]
  if not matches:
    raise errors.UserError(f'no run {spec!r} in the results')
  return _with_checkpoint(matches[0], spec, checkpoints_dir, split)


def _with_checkpoint(run, name, checkpoints_dir=None, split='test'):
  """`run`, if its checkpoints are still in its `run_dir` (grids are drawn from them), else
  the same run under `checkpoints_dir` (`FAMILY/RUN`, where `scripts/retrain_runs.py` puts
  a run retrained for them), if that one has them: its `run_dir`, and its own R and D on
  `split` (from its record: on another CPU a retrained run ends apart, by up to several
  nats after one epoch, see `scripts/retrain_runs.py`)."""
  if os.path.isfile(os.path.join(run.run_dir, 'checkpoint')):
    return run
  where = [run.run_dir]
  if checkpoints_dir:
    retrained = os.path.join(checkpoints_dir, run.family, os.path.basename(run.run_dir))
    if os.path.isfile(os.path.join(retrained, 'checkpoint')):
      metrics = run_record.read_run_record(retrained)['metrics'][split]
      return run._replace(run_dir=retrained, rate=metrics['rate'],
                          distortion=metrics['distortion'])
    where.append(retrained)
  raise errors.UserError(f'run {name!r}: no checkpoint in {" or ".join(where)} (Figure 4 is '
                         'drawn from the trained model; scripts/retrain_runs.py retrains it)')


def figure5_runs(runs, beta, checkpoints_dir=None, split='test'):
  """The runs of Figure 5 (Appendix A: every family at one beta, no annealing, seed 0), in
  the order of `families.FAMILIES`, and the families that have no such run."""
  from brokenelbo.models import families  # pylint: disable=g-import-not-at-top
  by_family = {run.family: run for run in runs
               if (run.beta, run.anneal, run.seed) == (beta, 0., 0)}
  missing = [f for f in families.FAMILIES if f not in by_family]
  chosen = [_with_checkpoint(by_family[f], f'{f}:{beta:g}', checkpoints_dir, split)
            for f in families.FAMILIES if f in by_family]
  if not chosen:
    raise errors.UserError(f'--figure5: no run at beta {beta:g} without annealing in the results')
  return chosen, missing


def _figure4(chosen, columns=None):
  """Figure 4 of the chosen runs, each restored from its run directory (`columns` panels
  a row; all in one row if `None`)."""
  # Imported here: Figure 3 alone needs no TensorFlow.
  from brokenelbo.training import restore  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=g-import-not-at-top,unused-import
  from brokenelbo.visualize import grids  # pylint: disable=g-import-not-at-top
  panels = []
  for run in chosen:
    gin.clear_config()  # Each run's own config, nothing else.
    annealed = f', anneal {run.anneal:g}' if run.anneal else ''
    panels.append((f'{run.family} beta {run.beta:g}{annealed}\n'
                   f'R {run.rate:.1f}, D {run.distortion:.1f}',
                   restore.restore_run(run.run_dir)))
  return grids.figure4(panels, columns=columns)


def _suffix():
  """The figures' file name suffix: none for the test split, `_<split>` otherwise."""
  return '' if FLAGS.split == 'test' else f'_{FLAGS.split}'


def define_flags():
  """Defines the command line's flags (only when run as a binary: importing defines none)."""
  flags.DEFINE_string('results', None, 'The sweep results CSV.', required=True)
  flags.DEFINE_string('output_dir', None, 'Where to write the figures.', required=True)
  flags.DEFINE_enum('split', 'test', list(rd_plane.SPLIT_COLUMNS),
                    'Which rate and distortion to plot: test (rate, distortion, elbo) or '
                    'train (train_rate, ...); train figures get the suffix _train.')
  flags.DEFINE_string('dataset', None,
                      'Plot only the runs on this dataset (required when the CSV mixes them).')
  flags.DEFINE_bool('pdf', False, 'Write a PDF next to every PNG.')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figure files.')
  flags.DEFINE_list('figure4', [],
                    'Runs of the CSV whose Figure 4 grids to draw (figure4.png), each '
                    'FAMILY:BETA[:ANNEAL[:SEED]], e.g. --figure4=-+v:0.1,-+v:1; needs the '
                    "runs' checkpoints in their run_dir.")
  flags.DEFINE_float('figure5', None,
                     'Draw figure5.png: the Figure 4 grids of every family at this beta '
                     '(no annealing, seed 0), four a row, e.g. --figure5=1 as in the '
                     "paper's Figure 5; needs the runs' checkpoints.")
  flags.DEFINE_bool('figure6', False,
                    "Draw figure6.png: the Figure 4 grids of the runs on the CSV's Pareto "
                    "frontier (the paper's Figure 6), by increasing rate, four a row; needs "
                    "the runs' checkpoints.")
  flags.DEFINE_string('checkpoints_dir', None,
                      'Where runs retrained for their checkpoints are (FAMILY/RUN under it, '
                      'scripts/retrain_runs.py --output_dir): used for a run whose run_dir '
                      'has none.')


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
  runs = rd_plane.read_results(FLAGS.results, FLAGS.split, FLAGS.dataset,
                               extra_columns=information.COLUMNS)
  files.check_can_create_dir(FLAGS.output_dir, '--output_dir')
  title = f'{runs[0].dataset}, {FLAGS.split} split'
  figures = rd_plane.figure3(runs, title)
  if FLAGS.split == 'test':  # The suite is measured on the test split.
    if any(run.beta > 0. for run in information.suite_runs(runs)):
      figures['information'] = lambda: information.information_figure(runs, title)
    else:
      print(f'note: no information.png: no run of {FLAGS.results} with beta > 0 has the '
            f'information suite\'s columns {list(information.COLUMNS)} (python -m '
            'brokenelbo.sweep measures them)', file=sys.stderr)
  # Every record is read now, before anything is written.
  curves = rd_curves.curve_records(runs, FLAGS.split)
  if curves:
    figures['rd_curves'] = lambda: rd_curves.rd_curves_figure(runs, curves, title)
  elif rd_curves.CSV_COLUMN in files.read_csv(FLAGS.results, 'results')[0]:
    print(f'note: no rd_curves{_suffix()}.png: no run of {FLAGS.results} has an AIS '
          f'rate-distortion curve of the {FLAGS.split} split recorded at its final step '
          '(python -m brokenelbo.rd_curve records one)', file=sys.stderr)
  if FLAGS.figure4:  # Checked before anything is written, like every figure.
    chosen = [select_run(runs, spec, FLAGS.checkpoints_dir, FLAGS.split)
              for spec in FLAGS.figure4]
    figures['figure4'] = lambda: _figure4(chosen)
  if FLAGS.figure5 is not None:
    chosen5, missing = figure5_runs(runs, FLAGS.figure5, FLAGS.checkpoints_dir, FLAGS.split)
    if missing:
      print(f'note: figure5.png without {", ".join(missing)}: no run at beta '
            f'{FLAGS.figure5:g} without annealing', file=sys.stderr)
    figures['figure5'] = lambda: _figure4(chosen5, columns=4)
  if FLAGS.figure6:
    chosen6 = [_with_checkpoint(run, f'{run.family}:{run.beta:g}:{run.anneal:g}',
                                FLAGS.checkpoints_dir, FLAGS.split)
               for run in rd_plane.frontier_runs(runs)]
    figures['figure6'] = lambda: _figure4(chosen6, columns=4)
  written = rd_plane.write_figures(figures, FLAGS.output_dir, suffix=_suffix(),
                                   formats=('png', 'pdf') if FLAGS.pdf else ('png',),
                                   overwrite=FLAGS.overwrite)
  for path in written:
    print(path)


if __name__ == '__main__':
  define_flags()
  cli.start(main)
