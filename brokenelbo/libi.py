r"""Reproduces Table 1 of the LiBI paper: `python -m brokenelbo.libi`.

  python -m brokenelbo.libi --output_dir=runs/libi --results=results/libi/table1.json
  python -m brokenelbo.libi --results=results/libi/table1.json --print_only
  python -m brokenelbo.libi --results=runs/libi/table1.json --print_only --paired

Trains every method and setting of the profile's grid on each synthetic data set (the
restarts of a setting as one batched computation), keeps each setting's restart by its
method's validation objective, evaluates it on the test split, and prints Table 1 beside
the paper's; `experiments.libi_table` states the protocol and `--profile=protocol` (the
default, that of the committed table) its reductions. Each setting is one run of a study
(`experiments.libi_runs`): `python -m brokenelbo.train`, then `python -m
brokenelbo.evaluate`, on this machine (`--parallel` at once) or as a Slurm job array
(`--launcher=slurm`, as the sweep's); `--results` is rewritten after every run.
Stopping and rerunning the same command continues: evaluated settings are skipped and an
interrupted one resumes from its last checkpoint. `--datasets`, `--methods` and
`--indices` select a part.

  python -m brokenelbo.libi --profile=paper --members_per_run=640 \
      --output_dir=runs/libi_paper --results=runs/libi_paper/table1.json

`--members_per_run=N` batches the study: each method's settings x data sets x restarts on
a data-set type are trained as runs of at most N members (`libi_table.make_batches`),
each evaluated into every setting's record as its own run would be; the results, the
table and the figures are the same (docs/libi.md).

The flags, every input file and every output path are checked, and `--print_only` prints,
before TensorFlow loads.
"""

import os
import sys

from absl import flags

from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.experiments import launchers
from brokenelbo.experiments import libi_table
from brokenelbo.utils import cli
from brokenelbo.utils import files

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program)."""
  flags.DEFINE_string('output_dir', None, 'Where the runs live, one directory per setting.')
  flags.DEFINE_string('results', None, 'The results JSON (every run\'s record and Table 1), '
                      'rewritten after every run.')
  flags.DEFINE_enum('profile', 'protocol', sorted(libi_table.PROFILES),
                    'How much of the protocol: the paper\'s; protocol, its grids on fewer '
                    'data sets and restarts (the committed table); cpu, a quarter of the '
                    'grid; or a smoke test.')
  flags.DEFINE_list('datasets', ['linear_jtex', 'gaussian', 'cubic_jtex', 'mobius'],
                    'Data-set types to run, in this order (the default: cheapest first).')
  flags.DEFINE_list('methods', list(libi_table.METHODS), 'Methods to run.')
  flags.DEFINE_list('indices', None, 'Data sets of each type to run (default: the '
                    'profile\'s first ones).')
  flags.DEFINE_bool('print_only', False, 'Print the table of --results and exit.')
  flags.DEFINE_string('figures_dir', None, 'Draw Figure 1 and the posterior figures 2-5 '
                      '(LinearJTEx and CubicJTEx data set 0, the VAE and LiBI settings kept '
                      'in Table 1, restored from --output_dir) here.')
  flags.DEFINE_bool('paired', False, 'With --print_only: also compare LiBI with every '
                    'method and the ground truth on each data set\'s own test points (the '
                    'exact test log-likelihood point by point, with its standard error; '
                    'the kept runs restored from --output_dir, or the run directories '
                    'that --results names).')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figures.')
  flags.DEFINE_bool('dry_run', False, 'Print what would run (the commands of the runs to do '
                    'and, for Slurm, the sbatch script), run nothing.')
  flags.DEFINE_multi_string('gin_bindings', [], 'Extra bindings for every run (e.g. '
                            '"train.log_every_steps = 5000").')
  flags.DEFINE_string('members_per_run', None, 'Batch the study: train each method\'s '
                      'settings x data sets x restarts on a data-set type as runs of at '
                      'most this many members each (one run if it is large; at least the '
                      'restarts of a setting). Default: the profile\'s (none batches: one '
                      'run per setting and data set).')
  launchers.define_flags(parallel=1)


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
  return indices, _members_per_run()


def _members_per_run():
  """`--members_per_run` (or the profile's) as an `int`, or `None` (unbatched), checked."""
  profile = libi_table.PROFILES[FLAGS.profile]
  members = FLAGS.members_per_run
  try:
    members = profile.members_per_run if members is None else int(members)
  except ValueError:
    raise errors.UserError(f'--members_per_run must be an integer, got {members!r}') from None
  if members is None:
    return None
  libi_table.check_members_per_run(profile, FLAGS.datasets, members)
  for binding in FLAGS.gin_bindings:
    selector = binding.split('=')[0].strip()
    if selector in libi_table.MEMBER_BINDINGS:
      raise errors.UserError(f'--gin_bindings: {selector} is set per batched run by '
                             '--members_per_run; remove it')
  return members


def _check_outputs():
  """Checks, creating nothing, every path a run of the study writes, before any work:
  `--output_dir`, `--figures_dir`, and `--results`, which must be a results file if it
  exists (it is rewritten from the runs' records: anything else is refused, not replaced)."""
  files.check_can_create_dir(FLAGS.output_dir, '--output_dir')
  files.check_can_write_file(FLAGS.results, '--results')
  if os.path.exists(FLAGS.results):
    libi_table.load_results(FLAGS.results)
  if FLAGS.figures_dir:
    files.check_can_create_dir(FLAGS.figures_dir, '--figures_dir')


def _print_table(results):
  print(libi_table.format_table(results['table'], results['ground_truth']))
  print(f'{len(results["runs"])} settings evaluated')


def _figures(results):
  # Imported here: the flags and the table need no TensorFlow. Figures 2-5 restore runs,
  # whose configs name the registry's configurables.
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.experiments import libi_runs
  # pylint: enable=g-import-not-at-top
  libi_runs.draw_figures(results, FLAGS.output_dir, FLAGS.figures_dir,
                         overwrite=FLAGS.overwrite)


def _paired(results):
  # Imported here, like the figures: it restores runs.
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.experiments import libi_paired
  # pylint: enable=g-import-not-at-top
  print()
  print(libi_paired.format_paired(libi_paired.paired_comparison(results, FLAGS.output_dir)))


def _study(indices, members_per_run):
  """The study of the flags and its runs to do, after parsing the config of each of those
  (a bad binding fails before anything is computed; the gin registry, and with it
  TensorFlow, loads only where a run is to do) and, unless a dry run, writing the ground
  truth's records."""
  from brokenelbo.experiments import libi_runs  # pylint: disable=g-import-not-at-top

  study = libi_runs.make_study(FLAGS.output_dir, FLAGS.results, FLAGS.profile, FLAGS.datasets,
                               FLAGS.methods, indices, FLAGS.threads_per_run,
                               FLAGS.gin_bindings, members_per_run)
  todo = [run for run in study.runs if not study.is_done(run)]
  if todo:
    from brokenelbo import configurables  # pylint: disable=g-import-not-at-top,unused-import
    for run in todo:
      libi_runs.check_run_config(run, study.profile, FLAGS.gin_bindings)
  if not FLAGS.dry_run:
    libi_runs.write_truths(study, FLAGS.datasets, indices)
  return study, todo


def main(argv):
  del argv
  # `--print_only` and every mistake in the flags need no TensorFlow (a fraction of a
  # second); it loads only where a ground truth is computed or a figure restores a run.
  if FLAGS.print_only:
    if not FLAGS.results:
      raise errors.UserError('--print_only needs --results, the file to print')
    results = libi_table.load_results(FLAGS.results)
    if FLAGS.figures_dir:
      files.check_can_create_dir(FLAGS.figures_dir, '--figures_dir')
    _print_table(results)
    if FLAGS.paired:
      _paired(results)
    if FLAGS.figures_dir:
      _figures(results)
    return 0
  if FLAGS.paired:
    raise errors.UserError('--paired needs --print_only (it reads finished runs)')
  if not FLAGS.output_dir or not FLAGS.results:
    raise errors.UserError('--output_dir and --results are required')
  indices, members_per_run = _check_flags()
  launchers.check_flags(FLAGS)
  launcher = launchers.from_flags(FLAGS)
  _check_outputs()
  study, todo = _study(indices, members_per_run)
  batched = (f' in {len(study.runs)} batched runs of at most {members_per_run} members'
             if members_per_run else '')
  print(f'{study.num_settings} settings{batched}, {len(study.runs) - len(todo)} evaluated '
        f'before, {len(todo)} to do', file=sys.stderr, flush=True)
  if FLAGS.dry_run:
    print('\n'.join(launcher.describe(study, todo)))
    return 0
  if launchers.run_study(launcher, study, todo) is None:
    print('not waiting for the jobs; rerun the same command once they end to collect them',
          file=sys.stderr)
    return 0
  results = libi_table.load_results(FLAGS.results)
  _print_table(results)
  if FLAGS.figures_dir:
    _figures(results)
  reductions = libi_table.PROFILES[FLAGS.profile].reductions
  print(f'reductions of the protocol: {"; ".join(reductions) or "none"}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  define_flags()
  cli.start(main)
