"""Command-line plumbing shared by every entrypoint: gin flags, one-line errors.

Every `python -m brokenelbo.<tool>` binary parses `--gin_file`/`--gin_bindings` the same
way (unknown bindings are errors) and reports a fault as one line `error: ...` on stderr,
never as a traceback, with the exit status of its type (`brokenelbo.errors`); a run
directory another process is writing is a `UserError` (exit status 2).
"""

import errno
import functools
import inspect
import os
import sys
import tokenize

from absl import app
from absl import flags
import gin

from brokenelbo import domains
from brokenelbo import errors

# The package's root: `configs/` (package data; the repository's top-level `configs` is a
# link to it) is resolved against it.
PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _first_line(error):
  # gin appends "In call to configurable ..." lines to errors raised inside configurables;
  # the message is the first line.
  return str(error).splitlines()[0] if str(error) else type(error).__name__


def _os_error_line(error):
  """One line for an `OSError` raised while writing (a full disk, a read-only mount)."""
  reason = error.strerror or errno.errorcode.get(error.errno, '') or str(error)
  where = f': {error.filename}' if error.filename else ''
  return f'{reason}{where}'


def define_gin_flags():
  """Defines the multi-string flags `--gin_file` and `--gin_bindings`."""
  flags.DEFINE_multi_string('gin_file', [], 'Gin config files, applied in order; a relative '
                            'path that is not a file here is looked up in the installed '
                            'package (configs/---.gin works from any directory).')
  flags.DEFINE_multi_string('gin_bindings', [],
                            'Gin bindings, applied after the files, e.g. '
                            '"beta_schedule.beta = 0.5".')


def resolve_gin_file(path):
  """The file that `path` names: itself if it exists, else the same relative path under the
  installed package (`configs/---.gin` -> `<package>/configs/---.gin`).

  Nothing else is tried: a missing absolute path, or a relative one that is in neither place,
  is an `errors.UserError`, never replaced by a packaged file of the same name.
  """
  if os.path.isfile(path):
    return os.path.abspath(path)
  packaged = os.path.join(PACKAGE_DIR, path)
  if not os.path.isabs(path) and os.path.isfile(packaged):
    return packaged
  raise errors.UserError(f'gin file not found: {path}')


def resolve_gin_files(gin_files):
  """`[resolve_gin_file(f) for f in gin_files]`: a command line calls it first, so that a
  missing file is reported before TensorFlow loads."""
  return [resolve_gin_file(f) for f in gin_files]


def _parse(parse, where):
  """Calls `parse()`; a file or binding gin cannot read raises one `errors.UserError` line
  naming `where` and, where gin's tokenizer stopped, the line."""
  try:
    parse()
  except tokenize.TokenError as e:
    message, (line, _) = e.args
    raise errors.UserError(f'invalid gin configuration in {where}, line {line}: '
                           f'{message}') from None
  except (ValueError, KeyError, TypeError, SyntaxError, IOError) as e:
    message = ' '.join(str(e).split())
    raise errors.UserError(f'invalid gin configuration in {where}: {message}') from None


def parse_gin(gin_files, gin_bindings, bindings_flag='--gin_bindings'):
  """Parses gin files and bindings; unknown or malformed bindings, and values outside their
  declared domains (`brokenelbo.domains`), raise `errors.UserError` (naming the file, or
  `bindings_flag`, the flag the bindings came from).

  `gin_files` are resolved by `resolve_gin_file`; `include` statements by gin, which reads
  `include 'brokenelbo/configs/base.gin'` from the working directory or else from the
  installed package.
  """
  for path in resolve_gin_files(gin_files):
    _parse(functools.partial(gin.parse_config_file, path, skip_unknown=False), path)
  _parse(functools.partial(gin.parse_config, gin_bindings, skip_unknown=False),
         bindings_flag)
  domains.check_bindings()


def configured_arguments(fn):
  """Every argument of the configurable `fn` with a default, under the current gin config:
  its signature's defaults, then the bindings."""
  defaults = {name: parameter.default
              for name, parameter in inspect.signature(fn).parameters.items()
              if parameter.default is not inspect.Parameter.empty}
  return {**defaults, **gin.get_bindings(fn)}


def require_empty_gin_config(what):
  """Raises `ValueError` unless gin holds no bindings (`what` parses a run's own config)."""
  if gin.config_str().strip():
    raise ValueError(f'{what} parses a run\'s config into gin\'s global config, which '
                     'already holds bindings; call gin.clear_config() first')


def start(main):
  """Runs `main(argv)` under absl; each fault above becomes one line and its exit status."""

  def wrapped(argv):
    kind = 'error'
    try:
      return main(argv)
    except errors.UserError as e:
      status, line = errors.EXIT_USER_ERROR, _first_line(e)
    except errors.RunFailed as e:
      status, line = errors.EXIT_FAILED, _first_line(e)
    except errors.Preempted as e:
      kind, status, line = 'preempted', errors.EXIT_PREEMPTED, _first_line(e)
    except OSError as e:
      status, line = errors.EXIT_FAILED, _os_error_line(e)
    print(f'{kind}: {line}', file=sys.stderr)
    sys.exit(status)

  app.run(wrapped)
