r"""Trains one VAE family: `python -m brokenelbo.train --gin_file=configs/-+v.gin`.

  python -m brokenelbo.train --gin_file=configs/---.gin --gin_file=configs/cpu.gin \
      --gin_bindings='beta_schedule.beta = 0.5' --model_dir=runs/---_beta0.5
"""

from absl import flags

from brokenelbo.utils import cli
from brokenelbo.utils import files

flags.DEFINE_string('model_dir', None, 'Directory for checkpoints, summaries and metrics.')
flags.DEFINE_bool('overwrite', False, 'Start afresh in a model_dir holding a different run.')
cli.define_gin_flags()
flags.mark_flag_as_required('model_dir')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  # The flags' own mistakes are reported before TensorFlow loads (seconds).
  gin_files = cli.resolve_gin_files(FLAGS.gin_file)
  files.check_can_create_dir(FLAGS.model_dir, 'model_dir')
  from brokenelbo.training import trainer  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=g-import-not-at-top,unused-import
  cli.parse_gin(gin_files, FLAGS.gin_bindings)
  trainer.train(model_dir=FLAGS.model_dir, overwrite=FLAGS.overwrite)


if __name__ == '__main__':
  cli.start(main)
