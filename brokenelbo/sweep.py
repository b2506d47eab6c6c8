r"""Runs a sweep over families x betas x KL annealing x seeds (`experiments.sweep`).

On this machine, two runs at a time (`--launcher=local`, the default):
  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --results=results/mnist_rd.csv \
      --gin_file=configs/cpu.gin --betas=0.1,0.5,1,2 --anneal_epochs=0,1 \
      --anneal_decoders=+ --parallel=2

The paper-scale sweep on Slurm, one job per run with one GPU each (`--launcher=slurm`;
`--nowait`, `--collect_only` and `--dry_run` in docs/methods.md):
  python -m brokenelbo.sweep --launcher=slurm --output_dir=runs/paper_rd \
      --betas=0.1,0.2,0.5,1,2,5,10 --anneal_epochs=0,10 --threads_per_run=8 \
      --slurm_partition=gpu --slurm_gpus_per_node=1 --slurm_mem_gb=32 \
      --slurm_timeout_min=1440

Each trained run's information suite (`evaluation.suite`) is then measured on the test
split by `python -m brokenelbo.evaluate` (`--noinformation` skips it), e.g. on a GPU:
  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --gin_file=configs/cpu.gin \
      --evaluate_bindings='information_suite.likelihood_examples = 10000' \
      --evaluate_bindings='information_suite.num_samples = (1, 10, 100, 1000)'

Rerunning a command skips done runs, resumes unfinished ones and evaluates those lacking
their suite (more: docs/methods.md). The Slurm system test (`tests/test_slurm.py`):
  BROKENELBO_SLURM_PARTITION=debug BROKENELBO_SLURM_DIR=/shared/scratch/$USER \
      python -m pytest -q -n 0 tests/test_slurm.py
"""

import os

from absl import flags
import gin

# TensorFlow loads only once the flags are checked (`main`): these import none.
from brokenelbo.experiments import grid as grid_lib
from brokenelbo.experiments import launchers
from brokenelbo.models import families as families_lib
from brokenelbo.utils import cli
from brokenelbo.utils import files

FLAGS = flags.FLAGS

def define_flags():
  """The command line's flags (defined only when run as a program, so that the module
  can be imported next to other entrypoints)."""
  flags.DEFINE_string('output_dir', None, 'Where the runs live (one folder per run).')
  flags.DEFINE_string('results', None, 'The CSV to write (default: OUTPUT_DIR/results.csv).')
  flags.DEFINE_list('families', list(families_lib.FAMILIES), 'Families, run in this order.')
  flags.DEFINE_list('betas', ['0.1', '0.5', '1', '2'], 'Final betas of D + beta R.')
  flags.DEFINE_list('anneal_epochs', ['0'],
                    'KL annealing lengths in epochs (0: none): beta rises linearly from 0.')
  flags.DEFINE_string('anneal_decoders', '-+',
                      'Annealed runs (anneal_epochs > 0) only for families whose decoder is '
                      'one of these characters, e.g. "+" for the PixelCNN families.')
  flags.DEFINE_list('seeds', ['0'], 'Seeds (`train.seed`).')
  flags.DEFINE_bool('information', True,
                    'After training, measure each run\'s information suite on the test split '
                    '(python -m brokenelbo.evaluate) for the CSV\'s suite columns; a finished '
                    'run without it is evaluated on the next invocation. --noinformation: '
                    'train only (the suite\'s cells stay empty).')
  flags.DEFINE_multi_string('evaluate_bindings', [],
                            'Gin bindings of each run\'s evaluation, passed to '
                            'brokenelbo.evaluate as --gin_bindings after the sweep\'s '
                            'own (no Figure 4 grids), e.g. '
                            '"information_suite.num_samples = (1, 10, 100, 1000)".')
  flags.DEFINE_bool('collect_only', False, 'Only rewrite the results CSV from finished runs '
                    '(computes nothing, not even a missing information suite).')
  flags.DEFINE_bool('dry_run', False, 'Print what would run (the commands of the runs to do '
                    'and, for Slurm, the sbatch script), run nothing.')
  launchers.define_flags()
  flags.mark_flag_as_required('output_dir')
  cli.define_gin_flags()


def main(argv):
  del argv
  results = FLAGS.results or os.path.join(FLAGS.output_dir, 'results.csv')
  if not FLAGS.collect_only:
    # The flags' own mistakes are reported before TensorFlow loads (seconds).
    launchers.check_flags(FLAGS)
    grid = grid_lib.make_grid(FLAGS.families, FLAGS.betas, FLAGS.anneal_epochs,
                              FLAGS.anneal_decoders, FLAGS.seeds)
    grid_lib.check_grid_settings_unbound(FLAGS.gin_file, FLAGS.gin_bindings)
  if not FLAGS.dry_run:  # Every output, before any work.
    files.check_can_create_dir(FLAGS.output_dir, 'output_dir')
    files.check_can_write_file(results, '--results')
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.experiments import sweep as sweep_lib
  from brokenelbo.training import run_record
  # pylint: enable=g-import-not-at-top
  if FLAGS.collect_only:
    rows = sweep_lib.write_results(FLAGS.output_dir, results)
    print(f'{rows} finished runs -> {results}')
    return
  launcher = launchers.from_flags(FLAGS)
  sweep = sweep_lib.Sweep(FLAGS.output_dir, results, FLAGS.gin_file, FLAGS.gin_bindings,
                          FLAGS.threads_per_run, information=FLAGS.information,
                          evaluate_bindings=FLAGS.evaluate_bindings)
  # Every run's config is parsed before any run starts: a bad binding fails at once.
  for run in grid:
    gin.clear_config()  # Each run's config alone.
    sweep_lib.check_run_config(run, FLAGS.gin_file, FLAGS.gin_bindings,
                               FLAGS.evaluate_bindings)
  gin.clear_config()
  # Every record the CSV is made from is read now: a damaged one fails before any run.
  sweep_lib.read_records(FLAGS.output_dir)
  finished = [run_record.is_finished(sweep.model_dir(run)) for run in grid]
  todo = [run for run in grid if not sweep.is_done(run)]
  evaluate_only = sum(finished) - (len(grid) - len(todo))  # Finished, not done.
  print(f'{len(grid)} runs, {sum(finished)} finished, {len(todo)} to do' +
        (f' ({evaluate_only} only to evaluate)' if evaluate_only else ''), flush=True)
  if FLAGS.dry_run:
    for line in launcher.describe(sweep, todo):
      print(line)
    return
  files.check_writable_dir(FLAGS.output_dir, 'output_dir')
  written = launchers.run_study(launcher, sweep, todo)
  if written is None:
    print(f'not waiting for the jobs; --collect_only rewrites {results} from the runs that '
          'finished', flush=True)
    return
  print(f'{written} finished runs -> {results}', flush=True)


if __name__ == '__main__':
  define_flags()
  cli.start(main)
