r"""Records the AIS rate-distortion curve of a trained run's decoder and marginal.

  python -m brokenelbo.rd_curve --model_dir=runs/quick
  python -m brokenelbo.rd_curve --model_dir=runs/quick --split=train --overwrite \
      --gin_bindings='rd_curve_suite.num_examples = 8' \
      --gin_bindings='rd_curve_suite.betas = (0.5, 2.)'

The run's own `config.gin` rebuilds the model, which is restored from the run's latest
checkpoint (`training.restore`); the `--gin_file`s and `--gin_bindings` are applied after
that, on top of it: they bind the curve's settings (`rd_curve_suite`'s counts,
`record_rd_curve.max_examples`), never the model's.
`evaluation.rd_curve.record_rd_curve` says what is computed and where it is written: the
run's `rd_curve.json`, apart from `evaluate`'s `evaluation.json`. A split that has a record
keeps it unless `--overwrite`, which is checked before TensorFlow loads: a curve takes
hours.
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
  flags.DEFINE_string('model_dir', None, 'The run whose curve to record (as given to train).')
  flags.DEFINE_string('split', 'test', 'The split whose examples are annealed.')
  flags.DEFINE_bool('overwrite', False, 'Replace the split\'s existing record.')
  cli.define_gin_flags()
  flags.mark_flag_as_required('model_dir')


def _check_files():
  """Checks, creating nothing, what the command reads and writes: the run (its `config.gin`
  and its records, read), the gin files, and its `rd_curve.json` (written; a record of the
  split only with `--overwrite`)."""
  files.run_config(FLAGS.model_dir)
  run_record.read_run_record(FLAGS.model_dir)
  run_record.check_rd_curve_absent(FLAGS.model_dir, FLAGS.split, FLAGS.overwrite)
  files.check_can_write_file(os.path.join(FLAGS.model_dir, run_record.RD_CURVE_RECORD),
                             '--model_dir')
  cli.resolve_gin_files(FLAGS.gin_file)


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
  # A folder that holds no run, a damaged record, a record that would be replaced and an
  # output that cannot be written are reported before TensorFlow loads (seconds).
  _check_files()
  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.evaluation import rd_curve
  from brokenelbo.training import restore
  # pylint: enable=g-import-not-at-top
  run = restore.restore_run(FLAGS.model_dir)
  # On top of the run's config, which rebuilt the model: they bind the curve's settings.
  cli.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  record = rd_curve.record_rd_curve(run, FLAGS.model_dir, FLAGS.split, FLAGS.overwrite)
  print(files.to_json(record))


if __name__ == '__main__':
  define_flags()
  cli.start(main)
