"""The sweep's grid: families x betas x KL annealing lengths x seeds, and each run's name
and bindings.

A run of the grid is a dict (family, beta, anneal, seed). Its folder is
`<family>/beta=<b>_anneal=<a>_seed=<s>` (`run_name`), and the settings it gets on top of the
family's config file are three bindings (`run_bindings`), which a user's `--gin_file` or
`--gin_bindings` may not also set (`check_grid_settings_unbound`). The module imports no
TensorFlow: `python -m brokenelbo.sweep` checks its grid before TensorFlow loads.
"""

import itertools
import math

from brokenelbo import errors
from brokenelbo.models import families as families_lib
from brokenelbo.utils import cli


def _number(text, what):
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise errors.UserError(f'{what} must be finite numbers, got {text!r}')
  return value


def format_number(value):
  """1.0 -> '1', 0.5 -> '0.5': the form used in run names and bindings."""
  return f'{value:g}'


def make_grid(families, betas, anneal_epochs, anneal_decoders, seeds):
  """The runs, in order: a list of dicts (family, beta, anneal, seed)."""
  for values, flag in ((families, 'families'), (betas, 'betas'),
                       (anneal_epochs, 'anneal_epochs'), (seeds, 'seeds')):
    if not values:
      raise errors.UserError(f'--{flag} is empty: the sweep would have no runs')
  families_lib.check_families(families)
  betas = [_number(b, 'betas') for b in betas]
  anneals = [_number(a, 'anneal_epochs') for a in anneal_epochs]
  if any(b < 0 for b in betas) or any(a < 0 for a in anneals):
    raise errors.UserError('betas and anneal_epochs must be >= 0')
  try:
    seeds = [int(s) for s in seeds]
  except ValueError:
    raise errors.UserError(f'seeds must be integers, got {seeds}') from None
  grid = []
  for family, anneal, beta, seed in itertools.product(families, anneals, betas, seeds):
    if anneal > 0 and family[1] not in anneal_decoders:
      continue
    grid.append(dict(family=family, beta=beta, anneal=anneal, seed=seed))
  return grid


def run_name(run):
  """The run's folder under its family's: `beta=<b>_anneal=<a>_seed=<s>`."""
  return (f"beta={format_number(run['beta'])}_anneal={format_number(run['anneal'])}"
          f"_seed={run['seed']}")


# The settings that the grid gives each run, and the flags that choose them.
GRID_SETTINGS = {'beta_schedule.beta': '--betas', 'beta_schedule.anneal_epochs':
                 '--anneal_epochs', 'train.seed': '--seeds'}


def run_bindings(run):
  """The bindings that give the run its grid settings, after every other binding."""
  return [f"beta_schedule.beta = {run['beta']!r}",
          f"beta_schedule.anneal_epochs = {run['anneal']!r}",
          f"train.seed = {run['seed']}"]


def check_grid_settings_unbound(gin_files, gin_bindings):
  """Raises `errors.UserError` if a `--gin_file` or `--gin_bindings` binds a setting that the
  grid sets per run (`GRID_SETTINGS`), which the run's own binding would silently override.

  The files are read as text, their `include`s not followed: the family files include
  `base.gin`, which binds all three, so only what the user wrote is checked.
  """
  texts = list(gin_bindings)
  for path in gin_files:
    with open(cli.resolve_gin_file(path)) as f:
      texts.append(f.read())
  for text in texts:
    for line in text.splitlines():
      selector = line.split('#')[0].split('=')[0].strip()
      if selector in GRID_SETTINGS:
        raise errors.UserError(f'{selector} is set per run by {GRID_SETTINGS[selector]}; '
                               f'remove it from --gin_file/--gin_bindings')
