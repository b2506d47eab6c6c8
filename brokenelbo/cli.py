"""Command-line plumbing shared by every entrypoint: gin flags, one-line errors.

Every `python -m brokenelbo.<tool>` binary parses `--gin_file`/`--gin_bindings` the same
way (unknown bindings are errors) and reports a user's mistake as one line on stderr with
exit status 2, never as a traceback.
"""

import os
import sys

from absl import app
from absl import flags
import gin

# The top-level `configs/` folder, so that `--gin_file=configs/x.gin` and `include 'base.gin'`
# both resolve wherever the command is run from.
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'configs')


class UserError(ValueError):
  """A mistake in the user's input: reported as one line, exit status 2."""


def define_gin_flags():
  """Defines the multi-string flags `--gin_file` and `--gin_bindings`."""
  flags.DEFINE_multi_string('gin_file', [], 'Gin config files, applied in order.')
  flags.DEFINE_multi_string('gin_bindings', [],
                            'Gin bindings, applied after the files, e.g. "train.beta = 0.5".')


def _resolve_gin_file(path):
  for candidate in (path, os.path.join(CONFIG_DIR, path),
                    os.path.join(CONFIG_DIR, os.path.basename(path))):
    if os.path.isfile(candidate):
      return candidate
  raise UserError(f'gin file not found: {path}')


def parse_gin(gin_files, gin_bindings):
  """Parses gin files and bindings; unknown or malformed bindings raise `UserError`."""
  # Search `configs/` before the working directory, so that `include 'base.gin'` resolves
  # without gin logging a failed lookup first (gin has no public API to order prefixes).
  prefixes = gin.config._LOCATION_PREFIXES  # pylint: disable=protected-access
  if prefixes[0] != CONFIG_DIR:
    prefixes.insert(0, CONFIG_DIR)
  files = [os.path.abspath(_resolve_gin_file(f)) for f in gin_files]
  try:
    gin.parse_config_files_and_bindings(files, gin_bindings, skip_unknown=False,
                                        finalize_config=False)
  except (ValueError, KeyError, TypeError, SyntaxError, IOError) as e:
    message = ' '.join(str(e).split())
    raise UserError(f'invalid gin configuration: {message}') from None


def run(main):
  """Runs `main(argv)` under absl; a `UserError` becomes one line and exit status 2."""

  def wrapped(argv):
    try:
      return main(argv)
    except UserError as e:
      # gin appends "In call to configurable ..." lines to errors raised inside
      # configurables; the user's message is the first line.
      print(f'error: {str(e).splitlines()[0]}', file=sys.stderr)
      sys.exit(2)

  app.run(wrapped)
