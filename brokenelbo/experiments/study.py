"""A study: a list of runs, each trained and then evaluated by the package's own commands.

A run of a study is a directory trained by `python -m brokenelbo.train` (gin files and
bindings, never a copied `.gin` file) and then, where the study measures more than
training does, evaluated by `python -m brokenelbo.evaluate`; both write their records in
the run's directory (`training.run_record`), which are all that a study reads back. The
run's log is `<run dir>.log` (appended to). `Study.execute` does one run: trains (or
resumes) it unless it is finished, evaluates it unless it is evaluated, then rewrites the
study's results from every record (`collect`, one process at a time: `collect_lock`).

A launcher (`experiments.launchers`) decides where `execute` runs: on this machine, a few
runs at once, or one Slurm job per run. Running a study again skips what is done,
resumes what was cut off from its last checkpoint, and retries what failed. The
rate-distortion sweep (`experiments.sweep`) and the LiBI table (`experiments.libi_runs`)
are the two studies; a subclass says what a run is: `model_dir`, `train_command`,
`evaluate_command`, `needs_evaluation` and `collect`.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time

from absl import logging

from brokenelbo import errors
from brokenelbo.training import run_record
from brokenelbo.utils import locks

COLLECT_LOCK = '.results.lock'


@contextlib.contextmanager
def collect_lock(output_dir):
  """Holds an exclusive `flock(2)` on `OUTPUT_DIR/.results.lock` (removed on release), so
  that the writers of one results file (the threads of a local study, the Slurm jobs of a
  study on several nodes) rewrite it one at a time, each from every record before it."""
  path = os.path.join(output_dir, COLLECT_LOCK)
  fd = locks.acquire(path)
  try:
    yield
  finally:
    locks.release(path, fd)


def locked_collect(output_dir, collect):
  """`collect()` under `collect_lock(output_dir)`, or alone where `output_dir` does not
  exist yet (no run, and no other writer)."""
  if not os.path.isdir(output_dir):
    return collect()
  with collect_lock(output_dir):
    return collect()


def command_line(module, model_dir, gin_files=(), gin_bindings=(), *flags):
  """`python -m brokenelbo.<module> --model_dir=... [--gin_file=F]... [--gin_bindings=B]...`
  followed by `flags`."""
  return [sys.executable, '-m', f'brokenelbo.{module}', f'--model_dir={model_dir}',
          *flags, *[f'--gin_file={f}' for f in gin_files],
          *[f'--gin_bindings={b}' for b in gin_bindings]]


def last_error(log_path, offset=0):
  """': <message>' of the last `error: ...` line of a run's log from byte `offset` on (where
  the command in question started writing), or ''."""
  with open(log_path, 'rb') as f:
    f.seek(offset)
    lines = f.read().decode('utf-8', 'replace').splitlines()
  found = [line.strip() for line in lines if line.startswith('error: ')]
  return f': {found[-1][len("error: "):]}' if found else ''


class Study:
  """Trains, then evaluates, one run per call of `execute`, and keeps the results current.

  Callers run `execute` from several threads (the local launcher) or pickle the study into
  a Slurm job that calls it for one run (`launchers.SlurmRun`): a study holds only its
  settings and the processes it is running, which do not travel.

  Args:
    output_dir: Python `str`, where the runs live.
    threads_per_run: Python `int`, TensorFlow threads of each process.
  """

  def __init__(self, output_dir, threads_per_run):
    self.output_dir = output_dir
    self.threads_per_run = threads_per_run
    self._init_processes()

  # What a subclass says of its runs.

  def model_dir(self, run):
    """The directory of `run`."""
    raise NotImplementedError

  def train_command(self, run):
    """The command that trains `run` (`command_line('train', ...)`)."""
    raise NotImplementedError

  def evaluate_command(self, run):
    """The command that evaluates the trained `run`, or `None` if the study evaluates
    nothing beyond training."""
    raise NotImplementedError

  def needs_evaluation(self, run):
    """Whether the finished `run` is still to be evaluated (`evaluate_command`)."""
    raise NotImplementedError

  def collect(self):
    """Rewrites the study's results from the records of its runs; returns the number of
    runs in them. Called under `collect_lock`."""
    raise NotImplementedError

  # The runner.

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

  def is_done(self, run):
    """Whether `execute` has nothing left to do for `run`."""
    return run_record.is_finished(self.model_dir(run)) and not self.needs_evaluation(run)

  def commands(self, run):
    """The commands that `execute` would run for `run` now (for `--dry_run`)."""
    finished = run_record.is_finished(self.model_dir(run))
    evaluate = self.needs_evaluation(run) if finished else self.evaluate_command(run)
    return ([] if finished else [self.train_command(run)]) + (
        [self.evaluate_command(run)] if evaluate else [])

  def write_results(self):
    """`collect` under `collect_lock`."""
    return locked_collect(self.output_dir, self.collect)

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

  def _train(self, run):
    """Trains (or resumes) `run`, which writes its own record (`run.json`) when it
    finishes; returns an error line, or `None` once the run is finished."""
    model_dir = self.model_dir(run)
    returncode, offset = self._run(self.train_command(run), model_dir)
    if returncode == errors.EXIT_PREEMPTED:
      raise errors.Preempted(f'{model_dir}: stopped by SIGTERM (exit status 75) after a '
                             'checkpoint; running the same command again continues it')
    if returncode:
      return (f'{model_dir}: exit status {returncode}'
              f'{last_error(model_dir + ".log", offset)}; see {model_dir}.log')
    if not run_record.is_finished(model_dir):
      return f'{model_dir}: finished without a record of finite metrics; see {model_dir}.log'
    return None

  def _evaluate(self, run):
    """Evaluates the finished `run`; returns an error line, or `None` once it is
    evaluated."""
    model_dir = self.model_dir(run)
    returncode, offset = self._run(self.evaluate_command(run), model_dir)
    if returncode in (errors.EXIT_PREEMPTED, -signal.SIGTERM):
      raise errors.Preempted(f'{model_dir}: its evaluation was stopped by SIGTERM; its training '
                             'is finished, and running the same command again evaluates it')
    see = (f'; see {model_dir}.log (its training is finished: running the same command '
           'again evaluates it)')
    if returncode:
      return (f'{model_dir}: evaluation exit status {returncode}'
              f'{last_error(model_dir + ".log", offset)}{see}')
    if self.needs_evaluation(run):
      return f'{model_dir}: its evaluation recorded nothing{see}'
    return None

  def execute(self, run):
    """Trains (or resumes) one run unless it is finished, then evaluates it if
    `needs_evaluation`, and rewrites the results; returns `None` on success, else an
    error line (the run's training failed, or its evaluation did).

    Raises:
      errors.Preempted: the training was stopped by SIGTERM (`stop`, or a scheduler that
        signals every process of a job) after saving a checkpoint, or the evaluation was
        stopped by SIGTERM; the same call continues it.
    """
    model_dir = self.model_dir(run)
    start = time.time()
    if not run_record.is_finished(model_dir):
      error = self._train(run)
      if error:
        return error
    error = self._evaluate(run) if self.needs_evaluation(run) else None
    written = self.write_results()
    test = run_record.read_run_record(model_dir)['metrics'].get('test', {})
    logging.info('done %s in %.0f s: test rate %.3f distortion %.3f elbo %.3f (%d runs in '
                 'the results)%s',
                 model_dir, time.time() - start, test.get('rate', float('nan')),
                 test.get('distortion', float('nan')), test.get('elbo', float('nan')),
                 written, f'; {error}' if error else '')
    return error
