r"""Runs a sweep over families x betas x KL annealing x seeds (`experiments.sweep`).

  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --results=results/mnist_rd.csv \
      --gin_file=configs/cpu.gin --betas=0.1,0.5,1,2 --anneal_epochs=0,1 \
      --anneal_decoders=+ --parallel=2

Running the same command again skips finished runs and resumes unfinished ones;
`experiments.sweep` says where runs live and what the CSV holds.
"""

import concurrent.futures
import os
import sys

from absl import flags
import gin

from brokenelbo.experiments import families as families_lib
from brokenelbo.experiments import sweep as sweep_lib
from brokenelbo.utils import cli
from brokenelbo.utils import configurables  # pylint: disable=unused-import
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
  flags.DEFINE_integer('parallel', 2, 'Runs at once.')
  flags.DEFINE_integer('threads_per_run', 1, 'TensorFlow intra- and inter-op threads per run.')
  flags.DEFINE_bool('collect_only', False, 'Only rewrite the results CSV from finished runs.')
  flags.DEFINE_bool('dry_run', False, 'Print the commands of the runs to do, run nothing.')
  flags.mark_flag_as_required('output_dir')
  cli.define_gin_flags()


def main(argv):
  del argv
  results = FLAGS.results or os.path.join(FLAGS.output_dir, 'results.csv')
  if FLAGS.collect_only:
    rows = sweep_lib.write_results(FLAGS.output_dir, results)
    print(f'{rows} finished runs -> {results}')
    return
  if FLAGS.parallel < 1 or FLAGS.threads_per_run < 1:
    raise cli.UserError('--parallel and --threads_per_run must be >= 1')
  grid = sweep_lib.make_grid(FLAGS.families, FLAGS.betas, FLAGS.anneal_epochs,
                             FLAGS.anneal_decoders, FLAGS.seeds)
  sweep = sweep_lib.Sweep(FLAGS.output_dir, results, FLAGS.gin_file, FLAGS.gin_bindings,
                          FLAGS.threads_per_run)
  sweep_lib.check_grid_settings_unbound(FLAGS.gin_file, FLAGS.gin_bindings)
  # Every run's config is parsed before any run starts: a bad binding fails at once.
  settings = []
  for run in grid:
    gin.clear_config()  # Each run's config alone.
    settings.append(sweep_lib.run_settings(run, FLAGS.gin_file, FLAGS.gin_bindings))
  todo = [(run, s) for run, s in zip(grid, settings)
          if not sweep_lib.is_finished(sweep.model_dir(run))]
  print(f'{len(grid)} runs, {len(grid) - len(todo)} finished, {len(todo)} to do', flush=True)
  if FLAGS.dry_run:
    for run, _ in todo:
      print(' '.join(sweep_lib.train_command(run, sweep.model_dir(run), FLAGS.gin_file,
                                             FLAGS.gin_bindings)))
    return
  files.check_writable_dir(FLAGS.output_dir, 'output_dir')
  with concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as pool:
    errors = [e for e in pool.map(lambda args: sweep.execute(*args), todo) if e]
  rows = sweep_lib.write_results(FLAGS.output_dir, results)
  print(f'{rows} finished runs -> {results}', flush=True)
  if errors:
    for error in errors:
      print(f'failed: {error}', file=sys.stderr)
    raise cli.RunFailed(f'{len(errors)} of {len(todo)} runs failed (listed above); rerun '
                        'the same command to retry them')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
