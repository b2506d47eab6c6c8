r"""Trains one VAE family: `python -m brokenelbo.train --gin_file=configs/-+v.gin`.

  python -m brokenelbo.train --gin_file=configs/---.gin --gin_file=configs/cpu.gin \
      --gin_bindings='beta_schedule.beta = 0.5' --model_dir=runs/---_beta0.5
"""

from absl import flags

from brokenelbo.training import trainer
from brokenelbo.utils import cli
from brokenelbo.utils import configurables  # pylint: disable=unused-import

flags.DEFINE_string('model_dir', None, 'Directory for checkpoints, summaries and metrics.')
flags.DEFINE_bool('overwrite', False, 'Start afresh in a model_dir holding a different run.')
cli.define_gin_flags()
flags.mark_flag_as_required('model_dir')
FLAGS = flags.FLAGS


def main(argv):
  del argv
  cli.parse_gin(FLAGS.gin_file, FLAGS.gin_bindings)
  trainer.train(model_dir=FLAGS.model_dir, overwrite=FLAGS.overwrite)


if __name__ == '__main__':
  cli.run(main)
