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
finite). Once its training has finished, `Sweep.execute` measures its information suite
on the test split (`evaluation.suite`: NLL_K, I_e, the marginal gap, active units, the
generative bounds E and G of Appendix C) as a second process in the same call,

  python -m brokenelbo.evaluate --model_dir=RUN_DIR --split=test \
      --gin_bindings='figure4_grids.examples = 0' [--gin_bindings=B for each
      --evaluate_bindings=B]

its output appended to the same log; it appends an `evaluate` record to the run's
`metrics.jsonl` (`evaluation.evaluate_run`). The sweep draws no Figure 4 grids (bind
`figure4_grids.examples` through `--evaluate_bindings` to have them), and
`--noinformation` skips the evaluation altogether.

Running the same command again skips done runs (finished, and with their suite unless
`--noinformation`), resumes unfinished ones from their last checkpoint, and evaluates
finished runs that lack their suite without training them again, so a sweep can be
stopped (or cut off) at any time and continued later. A run that fails (its training
exits non-zero, e.g. it diverged: see `training.trainer`) gets no `sweep.json` and no row;
the sweep lists it, exits non-zero, and tries it again on the next invocation. A run whose
evaluation fails is listed the same way (non-zero exit) but keeps its `sweep.json` and its
row, with empty suite cells; the next invocation runs only its evaluation again.

After every run, `--results` is rewritten (atomically, one process at a time:
`results_lock`) from the `sweep.json` of every finished run under `--output_dir`, one row
per run, with the columns (`columns`)

```none
family, encoder, decoder, marginal, dataset, beta, anneal, seed, epochs,
rate, distortion, elbo                       test split, whole split, nats per example
train_rate, train_distortion, train_elbo     train split
nll_k<K>, nll_k<K>_stderr                    for each K of the suite's records (below)
mutual_information, mutual_information_stderr, rate_information, rate_information_stderr,
marginal_kl, marginal_kl_stderr, log_num_examples, active_units,
generative_e, generative_e_stderr, generative_g, generative_g_stderr,
generative_g_num_samples, likelihood_examples, information_examples, generative_examples
run_dir
```

The suite's columns (`SUITE_COLUMNS`, `evaluation.suite`) come from the run's last
`evaluate` record of the test split that holds the suite and was made at the step of its
final evaluation (`information_record`), so a suite measured again by hand with
`python -m brokenelbo.evaluate` (at larger counts, say) replaces the sweep's in the next
CSV; a run without one leaves them empty. A record without the suite's
`likelihood_stride` was measured on the split's first examples, which are not a sample of
a class-sorted split (`evaluation.suite`); it does not count, and the next invocation
measures the suite again. `rate_information` is R on the suite's
`information_examples` from the same draws as I_e, so that `marginal_kl = rate_information -
mutual_information`; `log_num_examples` is log N of those examples, the cap of I_e.
`generative_g` is G at the suite's largest K (`generative_g_num_samples`). The K's of
`information_suite.num_samples` are gin-bindable, so the `nll_k<K>` columns are those of
the union of the K's that the CSV's runs recorded, ascending, each K's value then its
standard error; a run that lacks a K leaves its cells empty (a CSV of runs without any
suite has no `nll_k<K>` column). A non-finite number is written `nan`.

With the CSV, the sweep's experiment for TensorBoard's HParams dashboard
(`visualize.hparams`) is written, so that `tensorboard --logdir=OUTPUT_DIR` shows the
finished runs as a table and in scatter plots. `--collect_only` just rewrites both, after
writing the HParams session of any finished run that has none (a run trained before
sessions were logged); it computes nothing.
"""

import contextlib
import csv
import fcntl
import io
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time

from absl import logging
import gin

from brokenelbo import errors
from brokenelbo.experiments import grid as grid_lib
from brokenelbo.models import families as families_lib
from brokenelbo.training import checkpoints
from brokenelbo.training import restore
from brokenelbo.training import run_dir
from brokenelbo.utils import cli
from brokenelbo.utils import files
from brokenelbo.visualize import hparams

# The columns of every row: the run's settings and its final evaluations.
TRAINING_COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'beta', 'anneal',
                    'seed', 'epochs', 'rate', 'distortion', 'elbo', 'train_rate',
                    'train_distortion', 'train_elbo')
# The information suite's columns after the nll_k<K> ones (empty for a run without it).
SUITE_COLUMNS = ('mutual_information', 'mutual_information_stderr', 'rate_information',
                 'rate_information_stderr', 'marginal_kl', 'marginal_kl_stderr',
                 'log_num_examples', 'active_units', 'generative_e', 'generative_e_stderr',
                 'generative_g', 'generative_g_stderr', 'generative_g_num_samples',
                 'likelihood_examples', 'information_examples', 'generative_examples')
# Integers among them, written without decimals.
_COUNT_COLUMNS = ('active_units', 'generative_g_num_samples', 'likelihood_examples',
                  'information_examples', 'generative_examples')
# What the sweep's evaluation binds before `--evaluate_bindings` (which may override it):
# no Figure 4 grids, which cost a run's decoder samples and would make a later
# `python -m brokenelbo.evaluate` of the run refuse to replace them.
EVALUATE_BINDINGS = ('figure4_grids.examples = 0',)
# The suite's names of NLL_K and of G at K (`suite.information_suite`).
_NLL_KEY = re.compile(r'nll_k(\d+)$')
_GENERATIVE_G_KEY = re.compile(r'generative_g_k(\d+)$')


def nll_columns(num_samples):
  """`nll_k<K>, nll_k<K>_stderr` for each K of `num_samples`, ascending."""
  return tuple(f'nll_k{k}{end}' for k in sorted(set(num_samples)) for end in ('', '_stderr'))


def columns(num_samples):
  """The CSV's header when its runs' suites recorded the K's `num_samples`."""
  return TRAINING_COLUMNS + nll_columns(num_samples) + SUITE_COLUMNS + ('run_dir',)


def run_settings(run, gin_files, gin_bindings, evaluate_bindings=()):
  """Parses the run's config into gin's (empty) config (bad bindings fail here, before
  anything runs) and returns the settings the CSV reports: dataset, epochs, and the config
  that `train` will write as its `config.gin`.

  `evaluate_bindings` (those of the run's evaluation, `evaluate_command`) are then parsed
  on top of that config, as `brokenelbo.evaluate` parses them on top of the run's
  `config.gin`, so that they too fail before anything runs.
  """
  settings = restore.run_settings([f"configs/{run['family']}.gin", *gin_files],
                                  [*gin_bindings, *grid_lib.run_bindings(run)])
  splits = tuple(settings['eval_splits'])
  if 'test' not in splits or 'train' not in splits:
    raise errors.UserError(f"a sweep needs train.eval_splits to hold 'train' and 'test', got "
                           f'{splits}')
  dataset = settings['dataset']
  config = gin.config_str()
  cli.parse_gin([], [*EVALUATE_BINDINGS, *evaluate_bindings])
  return dict(dataset=getattr(dataset, '__name__', str(dataset)),
              epochs=float(settings['epochs']), config=config)


def _metrics_records(model_dir):
  """The records of `model_dir/metrics.jsonl`, in order (none if it does not exist)."""
  path = os.path.join(model_dir, 'metrics.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [json.loads(line) for line in f]


def final_metrics(model_dir, epochs):
  """{split: record} of the final evaluation of training in `model_dir/metrics.jsonl`, or
  `None` if the run has not reached `epochs`. Records with a `source` (those that
  `brokenelbo.evaluate` appends) are not training's and are passed over."""
  last = {}
  for record in _metrics_records(model_dir):
    if 'source' not in record and record['epoch'] >= epochs - 1e-6:
      last[record['split']] = record
  return last if {'train', 'test'} <= set(last) else None


def information_record(model_dir):
  """The information suite of a finished run: the last `evaluate` record of the test split
  in its `metrics.jsonl` that holds the suite (`mutual_information`) and was made at the
  step of its final test evaluation (that of its `sweep.json`) on examples spread through
  the split (with `likelihood_stride`); `None` if there is none or the run is not
  finished."""
  try:
    with open(os.path.join(model_dir, 'sweep.json')) as f:
      step = json.load(f)['metrics']['test']['step']
  except (OSError, ValueError, KeyError, TypeError):
    return None
  found = None
  for record in _metrics_records(model_dir):
    if (record.get('source') == 'evaluate' and record.get('split') == 'test' and
        record.get('step') == step and 'mutual_information' in record and
        'likelihood_stride' in record):
      found = record
  return found


def recorded_num_samples(suite):
  """The K's of the `nll_k<K>` entries of a suite record, ascending."""
  return sorted(int(m.group(1)) for m in map(_NLL_KEY.match, suite) if m)


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


def _cell(value, count=False):
  """A number as the CSV writes it: 4 decimals (counts none); `nan` if not finite."""
  if value is None or not math.isfinite(value):
    return 'nan'  # metrics.jsonl writes a non-finite number as null.
  return str(int(value)) if count else f'{value:.4f}'


def suite_cells(suite):
  """The CSV cells of a suite record (`information_record`): `{column: text}`."""
  cells = {}
  for k in recorded_num_samples(suite):
    for end in ('', '_stderr'):
      cells[f'nll_k{k}{end}'] = _cell(suite.get(f'nll_k{k}{end}'))
  g = [int(m.group(1)) for m in map(_GENERATIVE_G_KEY.match, suite) if m]
  if g:
    k = max(g)
    suite = dict(suite, generative_g=suite[f'generative_g_k{k}'],
                 generative_g_stderr=suite.get(f'generative_g_k{k}_stderr'),
                 generative_g_num_samples=k)
  for name in SUITE_COLUMNS:
    if name in suite:
      cells[name] = _cell(suite[name], count=name in _COUNT_COLUMNS)
  return cells


def csv_row(record, suite=None):
  """One CSV row from a finished run's `sweep.json` and its suite record (or `None`)."""
  test, train = record['metrics']['test'], record['metrics']['train']
  family = record['family']
  return dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
              dataset=record['dataset'], beta=grid_lib.format_number(record['beta']),
              anneal=grid_lib.format_number(record['anneal']), seed=record['seed'],
              epochs=grid_lib.format_number(record['epochs']),
              rate=f"{test['rate']:.4f}", distortion=f"{test['distortion']:.4f}",
              elbo=f"{test['elbo']:.4f}", train_rate=f"{train['rate']:.4f}",
              train_distortion=f"{train['distortion']:.4f}",
              train_elbo=f"{train['elbo']:.4f}", **suite_cells(suite or {}),
              run_dir=record['run_dir'])


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
      records.append((json.load(f), information_record(model_dir)))
    model_dirs.append(model_dir)
  order = {f: i for i, f in enumerate(families_lib.FAMILIES)}
  records.sort(key=lambda r: (r[0]['dataset'], order[r[0]['family']], r[0]['anneal'],
                              r[0]['beta'], r[0]['seed']))
  num_samples = {k for _, suite in records if suite for k in recorded_num_samples(suite)}
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns(num_samples), restval='',
                          lineterminator='\n')
  writer.writeheader()
  for record, suite in records:
    writer.writerow(csv_row(record, suite))
  files.write_atomic(path, out.getvalue())
  if model_dirs:
    hparams.write_experiment(output_dir, model_dirs)
  return len(records)


def _last_error(log_path, offset=0):
  """': <message>' of the last `error: ...` line of a run's log from byte `offset` on (where
  the command in question started writing), or ''."""
  with open(log_path, 'rb') as f:
    f.seek(offset)
    lines = f.read().decode('utf-8', 'replace').splitlines()
  errors = [line.strip() for line in lines if line.startswith('error: ')]
  return f': {errors[-1][len("error: "):]}' if errors else ''


def train_command(run, model_dir, gin_files, gin_bindings):
  command = [sys.executable, '-m', 'brokenelbo.train', f'--model_dir={model_dir}',
             f"--gin_file=configs/{run['family']}.gin"]
  command += [f'--gin_file={f}' for f in gin_files]
  command += [f'--gin_bindings={b}' for b in [*gin_bindings, *grid_lib.run_bindings(run)]]
  return command


def evaluate_command(model_dir, evaluate_bindings):
  """The command that measures a trained run's information suite on the test split:
  `brokenelbo.evaluate` with `EVALUATE_BINDINGS`, then `evaluate_bindings`."""
  return [sys.executable, '-m', 'brokenelbo.evaluate', f'--model_dir={model_dir}',
          '--split=test', *[f'--gin_bindings={b}'
                            for b in [*EVALUATE_BINDINGS, *evaluate_bindings]]]


class Sweep:
  """Trains, then evaluates, one run of the grid per call of `execute`, and keeps the CSV
  current.

  Callers run `execute` from several threads (the local launcher) or pickle the `Sweep`
  into a Slurm job that calls it for one run (`launchers.SlurmRun`): a `Sweep` holds only
  its settings and the processes it is running, which do not travel.

  Args:
    output_dir: Python `str`, where the runs live.
    results: Python `str`, the CSV.
    gin_files: Python `list` of `str`, the `--gin_file`s of every run's training.
    gin_bindings: Python `list` of `str`, the `--gin_bindings` of every run's training.
    threads_per_run: Python `int`, TensorFlow threads of each process.
    information: Python `bool`, measure each run's information suite (`evaluate_command`).
    evaluate_bindings: Python `list` of `str`, gin bindings of the evaluation, after
      `EVALUATE_BINDINGS`.
  """

  def __init__(self, output_dir, results, gin_files, gin_bindings, threads_per_run,
               information=True, evaluate_bindings=()):
    self.output_dir = output_dir
    self.results = results
    self.gin_files = list(gin_files)
    self.gin_bindings = list(gin_bindings)
    self.threads_per_run = threads_per_run
    self.information = information
    self.evaluate_bindings = list(evaluate_bindings)
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
    return os.path.join(self.output_dir, run['family'], grid_lib.run_name(run))

  def command(self, run):
    """The training command of `run`."""
    return train_command(run, self.model_dir(run), self.gin_files, self.gin_bindings)

  def evaluate_command(self, run):
    """The command that measures the information suite of `run`."""
    return evaluate_command(self.model_dir(run), self.evaluate_bindings)

  def needs_information(self, run):
    """Whether `run` is to get its information suite: `information` is on, the run has no
    suite record of its final step (`information_record`), and it has a checkpoint to
    evaluate (a finished run kept without its checkpoints, as the committed sweep's runs
    are, cannot be measured and is left as it is)."""
    model_dir = self.model_dir(run)
    return (self.information and information_record(model_dir) is None
            and bool(checkpoints.checkpoint_steps(model_dir)))

  def is_done(self, run):
    """Whether `execute` has nothing left to do for `run`: it is finished and, unless
    `information` is off, has its suite."""
    return is_finished(self.model_dir(run)) and not self.needs_information(run)

  def commands(self, run):
    """The commands that `execute` would run for `run` now (for `--dry_run`)."""
    finished = is_finished(self.model_dir(run))
    evaluate = self.needs_information(run) if finished else self.information
    return ([] if finished else [self.command(run)]) + (
        [self.evaluate_command(run)] if evaluate else [])

  def stop(self):
    """Sends SIGTERM to every process that `execute` is running, and keeps `execute` from
    starting new ones: a training saves a checkpoint of the step it reached and exits with
    status 75 (`training.preemption`), an evaluation just ends (it is run again from the
    start), and `execute` raises `errors.Preempted`.
    """
    with self._lock:
      self._stopping = True
      for process in self._processes:
        process.send_signal(signal.SIGTERM)

  def _run(self, command, model_dir):
    """Runs `command`, its output appended to `<model_dir>.log`; returns its exit status
    and the log's size before it started (where its output begins)."""
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(self.threads_per_run),
               TF_NUM_INTEROP_THREADS=str(self.threads_per_run), TF_CPP_MIN_LOG_LEVEL='2')
    os.makedirs(os.path.dirname(model_dir), exist_ok=True)
    with open(model_dir + '.log', 'a') as log:
      log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
      log.flush()
      offset = log.tell()
      with self._lock:
        if self._stopping:
          return errors.EXIT_PREEMPTED, offset
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                                   cwd=os.getcwd())
        self._processes.add(process)
      try:
        return process.wait(), offset
      finally:
        with self._lock:
          self._processes.discard(process)

  def _train(self, run, settings):
    """Trains (or resumes) `run` and writes its `sweep.json`; returns an error line, or
    `None` once the run is finished.

    A run whose training already reached its final evaluation (the sweep was stopped
    before it wrote the record, or its checkpoints were not kept) is recorded from its
    `metrics.jsonl` without training again, if its `config.gin` is the one the sweep would
    give it, its metrics are finite and its last attempt did not fail (`failed.json`).
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
      returncode, offset = self._run(command, model_dir)
      if returncode == errors.EXIT_PREEMPTED:
        raise errors.Preempted(f'{model_dir}: stopped by SIGTERM (exit status 75) after a '
                               'checkpoint; running the sweep again continues it')
      if returncode:
        return (f'{model_dir}: exit status {returncode}'
                f'{_last_error(model_dir + ".log", offset)}; see {model_dir}.log')
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
    return None

  def _evaluate(self, run):
    """Measures the information suite of the finished `run` (`evaluate_command`); returns
    an error line, or `None` once its `metrics.jsonl` holds the suite."""
    model_dir = self.model_dir(run)
    returncode, offset = self._run(self.evaluate_command(run), model_dir)
    if returncode in (errors.EXIT_PREEMPTED, -signal.SIGTERM):
      raise errors.Preempted(f'{model_dir}: its evaluation was stopped by SIGTERM; its training '
                             'is finished, and running the sweep again evaluates it')
    see = (f'; see {model_dir}.log (its training is finished: running the sweep again '
           'evaluates it)')
    if returncode:
      return (f'{model_dir}: evaluation exit status {returncode}'
              f'{_last_error(model_dir + ".log", offset)}{see}')
    if information_record(model_dir) is None:
      return f'{model_dir}: its evaluation recorded no information suite{see}'
    return None

  def execute(self, run, settings):
    """Trains (or resumes) one run unless it is finished, then measures its information
    suite if `needs_information`, and rewrites the CSV; returns `None` on success, else an
    error line (the run's training failed, or its evaluation did).

    Raises:
      errors.Preempted: the training was stopped by SIGTERM (`stop`, or a scheduler that
        signals every process of a job) after saving a checkpoint, or the evaluation was
        stopped by SIGTERM; the same call continues it.
    """
    model_dir = self.model_dir(run)
    start = time.time()
    if not is_finished(model_dir):
      error = self._train(run, settings)
      if error:
        return error
    error = self._evaluate(run) if self.needs_information(run) else None
    rows = write_results(self.output_dir, self.results)
    with open(os.path.join(model_dir, 'sweep.json')) as f:
      test = json.load(f)['metrics']['test']
    logging.info('done %s in %.0f s: test rate %.3f distortion %.3f elbo %.3f (%d rows)%s',
                 model_dir, time.time() - start, test['rate'], test['distortion'],
                 test['elbo'], rows, f'; {error}' if error else '')
    return error
