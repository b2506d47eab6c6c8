r"""Evaluates a trained run and draws its Figure 4-style grids.

  python -m brokenelbo.evaluate --model_dir=runs/quick
  python -m brokenelbo.evaluate --model_dir=runs/quick --split=train \
      --gin_bindings='evaluate_run.num_z_samples = 10'

The run's own `config.gin` rebuilds the model, which is restored from the run's latest
checkpoint (`training.restore`); `evaluation.evaluate_run` says what is computed and where
it is written. Existing figures are kept unless `--overwrite`.
"""


from absl import flags

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


def main(argv):
  del argv
  # A folder that holds no run is reported before TensorFlow loads (seconds).
  files.run_config(FLAGS.model_dir)
  from brokenelbo.evaluation import evaluate_run  # pylint: disable=g-import-not-at-top
  from brokenelbo.training import restore  # pylint: disable=g-import-not-at-top
  from brokenelbo.utils import configurables  # pylint: disable=g-import-not-at-top,unused-import
  run = restore.restore_run(FLAGS.model_dir, FLAGS.gin_bindings)
  record = evaluate_run.evaluate_run(run, FLAGS.model_dir, FLAGS.split, FLAGS.output_dir,
                                     FLAGS.overwrite)
  print(files.to_json(record))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
