"""The package's error types and the exit statuses a command line gives them.

A command line (`utils.cli.start`) reports each as one line on stderr, never a traceback:

  `UserError`  a mistake in the user's input (a flag, a binding, a file), exit status 2;
  `RunFailed`  a run that could not finish or whose result is not valid (it diverged, no
               checkpoint reads back, the disk is full), exit status 1;
  `Preempted`  training stopped by SIGTERM after saving a checkpoint, exit status 75
               (`EX_TEMPFAIL` of sysexits.h): the same command continues it.

This module imports nothing of the package, so that every layer may raise them.
"""

EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_PREEMPTED = 75


class UserError(ValueError):
  """A mistake in the user's input: reported as one line, exit status 2."""


class RunFailed(RuntimeError):
  """A run that could not finish or whose result is not valid: one line, exit status 1."""


class Preempted(RuntimeError):
  """Training stopped on request (SIGTERM) after a checkpoint: one line, exit status 75."""
