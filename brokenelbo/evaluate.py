r"""Evaluates a trained run and draws its Figure 4-style grids.

  python -m brokenelbo.evaluate --model_dir=runs/quick
  python -m brokenelbo.evaluate --model_dir=runs/quick --split=train \
      --gin_bindings='evaluate_run.num_z_samples = 10'

The run's own `config.gin` rebuilds the model, which is restored from the run's latest
checkpoint (`training.restore`); `evaluation.evaluate_run` says what is computed and where
it is written. The grids (`visualize.grids.figure4_grids`; `figure4_grids.examples = 0`
draws none) go to `OUTPUT_DIR/figure4_<split>.png`; existing figures are kept unless
`--overwrite`.
"""

import os

from absl import flags

from brokenelbo import errors
from brokenelbo.training import run_record  # Imports no TensorFlow.
from brokenelbo.utils import cli
from brokenelbo.utils import files

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that the module
  can be imported next to other entrypoints)."""
  flags.DEFINE_string('model_dir', None, 'The run to evaluate (as given to train).')
  flags.DEFINE_string('split', 'test', 'The split to evaluate.')
  flags.DEFINE_string('output_dir', None, 'Where to draw the grids (default MODEL_DIR/figures).')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figures.')
  flags.DEFINE_multi_string('gin_bindings', [], 'Gin bindings applied after the run\'s '
                            'config, e.g. "evaluate_run.num_z_samples = 10".')
  flags.mark_flag_as_required('model_dir')


def _check_files():
  """Checks, creating nothing, what the evaluation reads and writes: the run (its
  `config.gin`, and its records, read), its `evaluation.json` (written) and the figures'
  folder `--output_dir`."""
  files.run_config(FLAGS.model_dir)
  run_record.read_run_record(FLAGS.model_dir)
  run_record.read_evaluations(FLAGS.model_dir)
  files.check_can_write_file(os.path.join(FLAGS.model_dir, run_record.EVALUATION_RECORD),
                             '--model_dir')
  if FLAGS.output_dir:
    files.check_can_create_dir(FLAGS.output_dir, '--output_dir')


def main(argv):
  del argv
  # A folder that holds no run, a damaged record and an output that cannot be written are
  # reported before TensorFlow loads (seconds).
  _check_files()
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.evaluation import evaluate_run
  from brokenelbo.training import restore
  from brokenelbo.visualize import grids
  # pylint: enable=g-import-not-at-top
  run = restore.restore_run(FLAGS.model_dir, FLAGS.gin_bindings)
  figure = os.path.join(FLAGS.output_dir or os.path.join(FLAGS.model_dir, 'figures'),
                        f'figure4_{FLAGS.split}.png')
  draw = cli.configured_arguments(grids.figure4_grids)['examples']
  if draw and os.path.exists(figure) and not FLAGS.overwrite:
    raise errors.UserError(f'{figure} exists; pass --overwrite to replace it')
  if draw:
    files.check_can_write_file(figure, '--output_dir')
  record = evaluate_run.evaluate_run(run, FLAGS.model_dir, FLAGS.split)
  if draw:
    images = evaluate_run.evaluation_images(
        run, FLAGS.split, cli.configured_arguments(evaluate_run.evaluate_run)['max_examples'])
    name = os.path.join(*os.path.normpath(os.path.abspath(FLAGS.model_dir)).split(os.sep)[-2:])
    grids.figure4_grids(run.model, images, figure,
                        f'{name}: {FLAGS.split} R = {record["rate"]:.2f}, '
                        f'D = {record["distortion"]:.2f}', seed=run.settings['seed'] + 3)
  print(files.to_json(record))


if __name__ == '__main__':
  define_flags()
  cli.start(main)
