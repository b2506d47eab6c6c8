"""Runs the toy experiment of Section 4.1 (Figure 2): `python -m brokenelbo.toy --output_dir=DIR`.

Applies the packaged `configs/toy.gin`, then any `--gin_file`s and `--gin_bindings`, and writes
`DIR/toy.json`, `DIR/figure2.png` and `DIR/operative_config.gin`.
"""

import os

from absl import flags

from brokenelbo import errors
from brokenelbo.utils import cli
from brokenelbo.utils import files

FLAGS = flags.FLAGS
flags.DEFINE_string('output_dir', None, 'Where to write toy.json and figure2.png.',
                    required=True)
flags.DEFINE_bool('overwrite', False, 'Replace an existing DIR/toy.json.')
cli.define_gin_flags()


def main(argv):
  if len(argv) > 1:
    raise errors.UserError(f'unexpected arguments: {" ".join(argv[1:])}')
  # The flags' own mistakes are reported before TensorFlow loads (seconds).
  gin_files = cli.resolve_gin_files(['configs/toy.gin'] + FLAGS.gin_file)
  files.check_can_create_dir(FLAGS.output_dir, 'output_dir')
  from brokenelbo.experiments import toy  # pylint: disable=g-import-not-at-top
  for name in (toy.RESULTS_FILE, toy.FIGURE_FILE, toy.OPERATIVE_CONFIG_FILE):
    files.check_can_write_file(os.path.join(FLAGS.output_dir, name), 'output_dir')
  cli.parse_gin(gin_files, FLAGS.gin_bindings)
  toy.toy_experiment(FLAGS.output_dir, overwrite=FLAGS.overwrite)


if __name__ == '__main__':
  cli.start(main)
