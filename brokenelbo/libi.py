r"""Reproduces Table 1 of the LiBI paper: `python -m brokenelbo.libi`.

  python -m brokenelbo.libi --output_dir=runs/libi --results=results/libi/table1.json
  python -m brokenelbo.libi --results=results/libi/table1.json --print_only

Trains every method and setting of the profile's grid on each synthetic data set (the
restarts of a setting as one batched computation), keeps each setting's restart by its
method's validation objective, evaluates it on the test split, and prints Table 1 beside
the paper's; `experiments.libi_table` states the protocol and `--profile=cpu` (the
default) its reductions. Runs execute one after another in this process, each writing its
own run directory; `--results` is rewritten after every run. Stopping and rerunning the
same command continues: evaluated settings are skipped and an interrupted one resumes from
its last checkpoint. `--datasets`, `--methods` and `--indices` select a part.

The flags are checked, and `--print_only` prints, before TensorFlow loads; the runs
themselves are `experiments.libi_runs`.
"""

import os
import sys

from absl import flags

from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.experiments import libi_table
from brokenelbo.utils import cli
from brokenelbo.utils import files

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program)."""
  flags.DEFINE_string('output_dir', None, 'Where the runs live, one directory per setting.')
  flags.DEFINE_string('results', None, 'The results JSON (every run\'s record and Table 1), '
                      'rewritten after every run.')
  flags.DEFINE_enum('profile', 'cpu', sorted(libi_table.PROFILES),
                    'How much of the protocol: the paper\'s, the reduced one of the '
                    'committed results, or a smoke test.')
  flags.DEFINE_list('datasets', ['linear_jtex', 'gaussian', 'cubic_jtex', 'mobius'],
                    'Data-set types to run, in this order (the default: cheapest first).')
  flags.DEFINE_list('methods', list(libi_table.METHODS), 'Methods to run.')
  flags.DEFINE_list('indices', None, 'Data sets of each type to run (default: the '
                    'profile\'s first ones).')
  flags.DEFINE_bool('print_only', False, 'Print the table of --results and exit.')
  flags.DEFINE_string('figures_dir', None, 'Draw Figure 1 and the posterior figures 2-5 '
                      '(LinearJTEx and CubicJTEx data set 0, the VAE and LiBI settings kept '
                      'in Table 1, restored from --output_dir) here.')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figures.')
  flags.DEFINE_bool('remeasure_information', False,
                    'Measure I_q(X;Z) and KL(q(z)||p(z)) of every restart of the settings '
                    'already evaluated again, restoring each from its checkpoint (nothing is '
                    'trained), e.g. after a change of their estimator.')
  flags.DEFINE_multi_string('gin_bindings', [], 'Extra bindings for every run (e.g. '
                            '"train.log_every_steps = 5000").')


def _check_flags():
  for name, values, allowed in (('datasets', FLAGS.datasets, libi_table.DATASETS),
                                ('methods', FLAGS.methods, libi_table.METHODS)):
    unknown = sorted(set(values) - set(allowed))
    if unknown:
      raise errors.UserError(f'--{name}: unknown {", ".join(unknown)} (choose from '
                             f'{", ".join(allowed)})')
  indices = None
  if FLAGS.indices is not None:
    try:
      indices = [int(i) for i in FLAGS.indices]
    except ValueError:
      raise errors.UserError(f'--indices must be integers, got {FLAGS.indices}') from None
    if any(not 0 <= i < data.NUM_DATASETS for i in indices):
      raise errors.UserError(f'--indices must be in [0, {data.NUM_DATASETS})')
  return indices


def _print_table(results):
  # The table from the runs themselves, so that a file written by an older version prints.
  print(libi_table.format_table(libi_table.summarize(results['runs']),
                                results['ground_truth']))
  runs = results['runs']
  print(f'{len(runs)} runs, {libi_table.elapsed_seconds(runs) / 3600:.2f} h of training '
        'and evaluation')


def _figures(results):
  # Imported here: the flags and the table need no TensorFlow.
  from brokenelbo.experiments import libi_runs  # pylint: disable=g-import-not-at-top
  libi_runs.draw_figures(results, FLAGS.output_dir, FLAGS.figures_dir,
                         overwrite=FLAGS.overwrite)


def main(argv):
  del argv
  # `--print_only` and every mistake in the flags need no TensorFlow (a fraction of a
  # second); it loads with `libi_runs`.
  if FLAGS.print_only:
    if not FLAGS.results or not os.path.isfile(FLAGS.results):
      raise errors.UserError(f'--print_only needs an existing --results file, got '
                             f'{FLAGS.results!r}')
    results = libi_table.load_results(FLAGS.results)
    _print_table(results)
    if FLAGS.figures_dir:
      _figures(results)
    return 0
  if not FLAGS.output_dir or not FLAGS.results:
    raise errors.UserError('--output_dir and --results are required')
  indices = _check_flags()
  files.check_writable_dir(FLAGS.output_dir, '--output_dir')
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.experiments import libi_runs
  # pylint: enable=g-import-not-at-top
  results, done, runs = libi_runs.run_table(
      FLAGS.output_dir, FLAGS.results, FLAGS.profile, FLAGS.datasets, FLAGS.methods,
      indices, FLAGS.gin_bindings, remeasure=FLAGS.remeasure_information)
  results_profile = {r['profile'] for r in results['runs']}
  if len(results_profile) > 1:
    print(f'note: --output_dir holds runs of several profiles: {sorted(results_profile)}',
          file=sys.stderr)
  _print_table(results)
  if FLAGS.figures_dir:
    _figures(results)
  reductions = libi_table.PROFILES[FLAGS.profile].reductions
  print(f'{done} of {len(runs)} settings were evaluated before; reductions of the '
        f'protocol: {"; ".join(reductions) or "none"}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run(main)
