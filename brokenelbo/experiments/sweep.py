r"""A sweep over families x betas x KL annealing x seeds, and its results CSV.

`python -m brokenelbo.sweep` runs it:

  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --results=results/mnist_rd.csv \
      --gin_file=configs/cpu.gin --betas=0.1,0.5,1,2 --anneal_epochs=0,1 \
      --anneal_decoders=+ --parallel=2

Each run is `python -m brokenelbo.train` with the family's config file, the shared
`--gin_file`s and `--gin_bindings`, and its own bindings (`beta_schedule.beta`,
`beta_schedule.anneal_epochs`, `train.seed`): never a copied .gin file. Runs live in
`OUTPUT_DIR/<family>/beta=<b>_anneal=<a>_seed=<s>/`, with the run's log next to it
(`<run dir>.log`, appended to). A launcher (`experiments.launchers`) runs them: on this
machine, up to `--parallel` at once, or as one Slurm job array; either way each run is one
call of `Sweep.execute`, limited to `--threads_per_run` TensorFlow threads.

A finished run has `sweep.json` in its directory (its settings and final metrics, all
finite). Running the same command again skips finished runs and resumes unfinished ones from
their last checkpoint, so a sweep can be stopped (or cut off) at any time and continued
later. A run that fails (its training exits non-zero, e.g. it diverged: see
`training.trainer`) gets no `sweep.json` and no row; the sweep lists it, exits non-zero, and
tries it again on the next invocation.

After every finished run, `--results` is rewritten (atomically, one process at a time:
`results_lock`) from the `sweep.json` of every finished run under `--output_dir`, one row
per run:
`family, encoder, decoder, marginal, dataset, beta, anneal, seed, epochs, rate,
distortion, elbo` (test split, nats per example, whole split), then `train_rate,
train_distortion, train_elbo` and `run_dir`; with it, the sweep's experiment for
TensorBoard's HParams dashboard (`visualize.hparams`), so that `tensorboard
--logdir=OUTPUT_DIR` shows the finished runs as a table and in scatter plots. `--collect_only`
just rewrites both, after writing the HParams session of any finished run that has none (a
run trained before sessions were logged).
"""

import contextlib
import csv
import fcntl
import io
import itertools
import json
import math
import os
import signal
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
from brokenelbo.visualize import hparams

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


RESULTS_LOCK = '.results.lock'


@contextlib.contextmanager
def results_lock(output_dir):
  """Holds an exclusive `flock(2)` on `OUTPUT_DIR/.results.lock` (removed on release), so
  that the writers of one CSV (the threads of a local sweep, the Slurm jobs of a sweep on
  several nodes) rewrite it one at a time, each from every record written before it."""
  path = os.path.join(output_dir, RESULTS_LOCK)
  while True:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)
    # A holder removes the file on release: if it did so between our open and our lock,
    # the lock is on a file no one else sees; start again.
    try:
      same = os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
      same = False
    if same:
      break
    os.close(fd)
  try:
    yield
  finally:
    os.remove(path)
    os.close(fd)


def write_results(output_dir, path):
  """Rewrites the CSV at `path` from every finished run under `output_dir` (under
  `results_lock`); returns the number of rows."""
  if not os.path.isdir(output_dir):
    return _write_results(output_dir, path)
  with results_lock(output_dir):
    return _write_results(output_dir, path)


def finished_runs(output_dir):
  """The directories of the finished runs under `output_dir`, as (family, model_dir)."""
  runs = []
  for family in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
    family_dir = os.path.join(output_dir, family)
    if family not in families_lib.FAMILIES or not os.path.isdir(family_dir):
      continue
    runs += [(family, os.path.join(family_dir, name)) for name in sorted(os.listdir(family_dir))
             if is_finished(os.path.join(family_dir, name))]
  return runs


def _write_results(output_dir, path):
  """The CSV, then the sweep's HParams experiment (`visualize.hparams`)."""
  records, model_dirs = [], []
  for _, model_dir in finished_runs(output_dir):
    with open(os.path.join(model_dir, 'sweep.json')) as f:
      records.append(json.load(f))
    model_dirs.append(model_dir)
  order = {f: i for i, f in enumerate(families_lib.FAMILIES)}
  records.sort(key=lambda r: (r['dataset'], order[r['family']], r['anneal'], r['beta'],
                              r['seed']))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator='\n')
  writer.writeheader()
  for record in records:
    writer.writerow(csv_row(record))
  files.write_atomic(path, out.getvalue())
  if model_dirs:
    hparams.write_experiment(output_dir, model_dirs)
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
  """Trains one run of the grid at a time per call of `execute`, and keeps the CSV current.

  Callers run `execute` from several threads (the local launcher) or pickle the `Sweep`
  into a Slurm job that calls it for one run (`launchers.SlurmRun`): a `Sweep` holds only
  its settings and the training processes it is running, which do not travel.
  """

  def __init__(self, output_dir, results, gin_files, gin_bindings, threads_per_run):
    self.output_dir = output_dir
    self.results = results
    self.gin_files = list(gin_files)
    self.gin_bindings = list(gin_bindings)
    self.threads_per_run = threads_per_run
    self._init_processes()

  def _init_processes(self):
    self._lock = threading.Lock()
    self._processes = set()
    self._stopping = False

  def __getstate__(self):
    state = dict(self.__dict__)
    for name in ('_lock', '_processes', '_stopping'):
      del state[name]
    return state

  def __setstate__(self, state):
    self.__dict__.update(state)
    self._init_processes()

  def model_dir(self, run):
    return os.path.join(self.output_dir, run['family'], run_name(run))

  def command(self, run):
    """The training command of `run`."""
    return train_command(run, self.model_dir(run), self.gin_files, self.gin_bindings)

  def stop(self):
    """Sends SIGTERM to every training process that `execute` is running, and keeps
    `execute` from starting new ones: each run saves a checkpoint of the step it reached and
    exits with status 75 (`training.preemption`), and its `execute` raises `cli.Preempted`.
    """
    with self._lock:
      self._stopping = True
      for process in self._processes:
        process.send_signal(signal.SIGTERM)

  def _train(self, command, model_dir):
    """Runs the training `command`, its output appended to `<model_dir>.log`; returns its
    exit status."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(self.threads_per_run),
               TF_NUM_INTEROP_THREADS=str(self.threads_per_run), TF_CPP_MIN_LOG_LEVEL='2')
    os.makedirs(os.path.dirname(model_dir), exist_ok=True)
    with open(model_dir + '.log', 'a') as log:
      log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
      log.flush()
      with self._lock:
        if self._stopping:
          return cli.EXIT_PREEMPTED
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=os.getcwd())
        self._processes.add(process)
      try:
        return process.wait()
      finally:
        with self._lock:
          self._processes.discard(process)

  def execute(self, run, settings):
    """Trains (or resumes) one run; returns `None` on success, else an error line.

    A run whose training already reached its final evaluation (the sweep was stopped
    before it wrote the record, or its checkpoints were not kept) is recorded from its
    `metrics.jsonl` without training again, if its `config.gin` is the one the sweep would
    give it, its metrics are finite and its last attempt did not fail (`failed.json`).

    Raises:
      cli.Preempted: the training was stopped by SIGTERM (`stop`, or a scheduler that
        signals every process of a job) after saving a checkpoint; the same call continues
        it.
    """
    settings = dict(settings)
    config = settings.pop('config')
    model_dir = self.model_dir(run)
    command = self.command(run)
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
      returncode = self._train(command, model_dir)
      if returncode == cli.EXIT_PREEMPTED:
        raise cli.Preempted(f'{model_dir}: stopped by SIGTERM (exit status 75) after a '
                            'checkpoint; running the sweep again continues it')
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
    rows = write_results(self.output_dir, self.results)
    test = metrics['test']
    logging.info('done %s in %.0f s: test rate %.3f distortion %.3f elbo %.3f (%d rows)',
                 model_dir, time.time() - start, test['rate'], test['distortion'],
                 test['elbo'], rows)
    return None
