r"""A sweep over families x betas x KL annealing x seeds, and its results CSV.

`python -m brokenelbo.sweep` runs it:

  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --results=results/mnist_rd.csv \
      --gin_file=configs/cpu.gin --betas=0.1,0.5,1,2 --anneal_epochs=0,1 \
      --anneal_decoders=+ --parallel=2

Each run is `python -m brokenelbo.train` with the family's config file, the shared
`--gin_file`s and `--gin_bindings`, and its own bindings (`beta_schedule.beta`,
`beta_schedule.anneal_epochs`, `train.seed`): never a copied .gin file. Runs live in
`OUTPUT_DIR/<family>/beta=<b>_anneal=<a>_seed=<s>/`, with the run's log next to it
(`<run dir>.log`, appended to). Up to `--parallel` runs go at once, each limited to
`--threads_per_run` TensorFlow threads.

A finished run has `sweep.json` in its directory (its settings and final metrics, all
finite). Running the same command again skips finished runs and resumes unfinished ones from
their last checkpoint, so a sweep can be stopped (or cut off) at any time and continued
later. A run that fails (its training exits non-zero, e.g. it diverged: see
`training.trainer`) gets no `sweep.json` and no row; the sweep lists it, exits non-zero, and
tries it again on the next invocation.

After every finished run, `--results` is rewritten (atomically) from the `sweep.json` of
every finished run under `--output_dir`, one row per run:
`family, encoder, decoder, marginal, dataset, beta, anneal, seed, epochs, rate,
distortion, elbo` (test split, nats per example, whole split), then `train_rate,
train_distortion, train_elbo` and `run_dir`. `--collect_only` just rewrites it.
"""

import csv
import io
import itertools
import json
import math
import os
import subprocess
import sys
import threading
import time

from absl import logging
import gin

from brokenelbo.experiments import families as families_lib
from brokenelbo.training import restore
from brokenelbo.training import run_dir
from brokenelbo.utils import cli
from brokenelbo.utils import files

COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'beta', 'anneal', 'seed',
           'epochs', 'rate', 'distortion', 'elbo', 'train_rate', 'train_distortion',
           'train_elbo', 'run_dir')

def _number(text, what):
  try:
    value = float(text)
  except ValueError:
    value = math.nan
  if not math.isfinite(value):
    raise cli.UserError(f'{what} must be finite numbers, got {text!r}')
  return value


def _format(value):
  """1.0 -> '1', 0.5 -> '0.5': the form used in run names and bindings."""
  return f'{value:g}'


def make_grid(families, betas, anneal_epochs, anneal_decoders, seeds):
  """The runs, in order: a list of dicts (family, beta, anneal, seed)."""
  for values, flag in ((families, 'families'), (betas, 'betas'),
                       (anneal_epochs, 'anneal_epochs'), (seeds, 'seeds')):
    if not values:
      raise cli.UserError(f'--{flag} is empty: the sweep would have no runs')
  families_lib.check_families(families)
  betas = [_number(b, 'betas') for b in betas]
  anneals = [_number(a, 'anneal_epochs') for a in anneal_epochs]
  if any(b < 0 for b in betas) or any(a < 0 for a in anneals):
    raise cli.UserError('betas and anneal_epochs must be >= 0')
  try:
    seeds = [int(s) for s in seeds]
  except ValueError:
    raise cli.UserError(f'seeds must be integers, got {seeds}') from None
  grid = []
  for family, anneal, beta, seed in itertools.product(families, anneals, betas, seeds):
    if anneal > 0 and family[1] not in anneal_decoders:
      continue
    grid.append(dict(family=family, beta=beta, anneal=anneal, seed=seed))
  return grid


def run_name(run):
  return f"beta={_format(run['beta'])}_anneal={_format(run['anneal'])}_seed={run['seed']}"


# The settings that the grid gives each run, and the flags that choose them.
GRID_SETTINGS = {'beta_schedule.beta': '--betas', 'beta_schedule.anneal_epochs':
                 '--anneal_epochs', 'train.seed': '--seeds'}


def run_bindings(run):
  return [f"beta_schedule.beta = {run['beta']!r}",
          f"beta_schedule.anneal_epochs = {run['anneal']!r}",
          f"train.seed = {run['seed']}"]


def check_grid_settings_unbound(gin_files, gin_bindings):
  """Raises `cli.UserError` if a `--gin_file` or `--gin_bindings` binds a setting that the
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
        raise cli.UserError(f'{selector} is set per run by {GRID_SETTINGS[selector]}; '
                            f'remove it from --gin_file/--gin_bindings')


def run_settings(run, gin_files, gin_bindings):
  """Parses the run's config into gin's (empty) config (bad bindings fail here, before
  anything runs) and returns the settings the CSV reports: dataset, epochs, and the config
  that `train` will write as its `config.gin`."""
  settings = restore.run_settings([f"configs/{run['family']}.gin", *gin_files],
                                  [*gin_bindings, *run_bindings(run)])
  splits = tuple(settings['eval_splits'])
  if 'test' not in splits or 'train' not in splits:
    raise cli.UserError(f"a sweep needs train.eval_splits to hold 'train' and 'test', got "
                        f'{splits}')
  dataset = settings['dataset']
  return dict(dataset=getattr(dataset, '__name__', str(dataset)),
              epochs=float(settings['epochs']), config=gin.config_str())


def final_metrics(model_dir, epochs):
  """{split: record} of the final evaluation in `model_dir/metrics.jsonl`, or `None` if the
  run has not reached `epochs`."""
  path = os.path.join(model_dir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  last = {}
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if record['epoch'] >= epochs - 1e-6:
        last[record['split']] = record
  return last if {'train', 'test'} <= set(last) else None


def all_finite(metrics):
  """Whether every rate, distortion and ELBO of `{split: record}` is a finite number."""
  return all(isinstance(record.get(name), (int, float)) and math.isfinite(record[name])
             for record in metrics.values() for name in ('rate', 'distortion', 'elbo'))


def is_finished(model_dir):
  """Whether `model_dir` holds a `sweep.json` with finite metrics."""
  path = os.path.join(model_dir, 'sweep.json')
  if not os.path.exists(path):
    return False
  try:
    with open(path) as f:
      return all_finite(json.load(f)['metrics'])
  except (ValueError, KeyError, TypeError, AttributeError):
    return False  # Cut short, or written before metrics had to be finite: run it again.


def csv_row(record):
  """One CSV row from a finished run's `sweep.json`."""
  test, train = record['metrics']['test'], record['metrics']['train']
  family = record['family']
  return dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
              dataset=record['dataset'], beta=_format(record['beta']),
              anneal=_format(record['anneal']), seed=record['seed'],
              epochs=_format(record['epochs']),
              rate=f"{test['rate']:.4f}", distortion=f"{test['distortion']:.4f}",
              elbo=f"{test['elbo']:.4f}", train_rate=f"{train['rate']:.4f}",
              train_distortion=f"{train['distortion']:.4f}",
              train_elbo=f"{train['elbo']:.4f}", run_dir=record['run_dir'])


def write_results(output_dir, path):
  """Rewrites the CSV at `path` from every finished run under `output_dir`; returns the
  number of rows."""
  records = []
  for family in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
    family_dir = os.path.join(output_dir, family)
    if family not in families_lib.FAMILIES or not os.path.isdir(family_dir):
      continue
    for name in sorted(os.listdir(family_dir)):
      record_path = os.path.join(family_dir, name, 'sweep.json')
      if is_finished(os.path.dirname(record_path)):
        with open(record_path) as f:
          records.append(json.load(f))
  order = {f: i for i, f in enumerate(families_lib.FAMILIES)}
  records.sort(key=lambda r: (r['dataset'], order[r['family']], r['anneal'], r['beta'],
                              r['seed']))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator='\n')
  writer.writeheader()
  for record in records:
    writer.writerow(csv_row(record))
  files.write_atomic(path, out.getvalue())
  return len(records)


def _last_error(log_path):
  """': <message>' of the last `error: ...` line of a run's log, or ''."""
  with open(log_path) as f:
    errors = [line.strip() for line in f if line.startswith('error: ')]
  return f': {errors[-1][len("error: "):]}' if errors else ''


def train_command(run, model_dir, gin_files, gin_bindings):
  command = [sys.executable, '-m', 'brokenelbo.train', f'--model_dir={model_dir}',
             f"--gin_file=configs/{run['family']}.gin"]
  command += [f'--gin_file={f}' for f in gin_files]
  command += [f'--gin_bindings={b}' for b in [*gin_bindings, *run_bindings(run)]]
  return command


class Sweep:
  """Runs the grid's unfinished runs, `parallel` at a time, and keeps the CSV current."""

  def __init__(self, output_dir, results, gin_files, gin_bindings, threads_per_run):
    self.output_dir = output_dir
    self.results = results
    self.gin_files = gin_files
    self.gin_bindings = gin_bindings
    self.env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads_per_run),
                    TF_NUM_INTEROP_THREADS=str(threads_per_run), TF_CPP_MIN_LOG_LEVEL='2')
    self.lock = threading.Lock()

  def model_dir(self, run):
    return os.path.join(self.output_dir, run['family'], run_name(run))

  def execute(self, run, settings):
    """Trains (or resumes) one run; returns `None` on success, else an error line.

    A run whose training already reached its final evaluation (the sweep was stopped
    before it wrote the record, or its checkpoints were not kept) is recorded from its
    `metrics.jsonl` without training again, if its `config.gin` is the one the sweep would
    give it, its metrics are finite and its last attempt did not fail (`failed.json`).
    """
    settings = dict(settings)
    config = settings.pop('config')
    model_dir = self.model_dir(run)
    command = train_command(run, model_dir, self.gin_files, self.gin_bindings)
    start = time.time()
    metrics = final_metrics(model_dir, settings['epochs'])
    config_path = os.path.join(model_dir, 'config.gin')
    failed = os.path.exists(os.path.join(model_dir, run_dir.FAILURE_FILE))
    if metrics is not None and all_finite(metrics) and not failed and \
        os.path.exists(config_path):
      with open(config_path) as f:
        trained = f.read() == config
    else:
      trained = False
    if trained:
      logging.info('%s finished training before; recording it', model_dir)
      seconds = None
    else:
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)
      with open(model_dir + '.log', 'a') as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=os.getcwd())
      if returncode:
        return (f'{model_dir}: exit status {returncode}{_last_error(model_dir + ".log")}; '
                f'see {model_dir}.log')
      metrics = final_metrics(model_dir, settings['epochs'])
      if metrics is None:
        return f'{model_dir}: finished without a final evaluation; see {model_dir}.log'
      if not all_finite(metrics):
        return f'{model_dir}: its final metrics are not finite; see {model_dir}.log'
      seconds = time.time() - start
    record = dict(run, **settings, run_dir=model_dir, metrics=metrics, command=command,
                  seconds=seconds)
    files.write_atomic(os.path.join(model_dir, 'sweep.json'),
                       files.to_json(record, indent=2) + '\n')
    with self.lock:
      rows = write_results(self.output_dir, self.results)
    test = metrics['test']
    logging.info('done %s in %.0f s: test rate %.3f distortion %.3f elbo %.3f (%d rows)',
                 model_dir, time.time() - start, test['rate'], test['distortion'],
                 test['elbo'], rows)
    return None
