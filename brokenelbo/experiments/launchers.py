r"""Launchers: where the runs of a sweep (`experiments.sweep`) execute.

`python -m brokenelbo.sweep --launcher=NAME` picks one. Each launcher calls the same
`Sweep.execute` once per run that is not done, which trains (or resumes) it, writes its
`sweep.json`, measures its information suite (`python -m brokenelbo.evaluate`) and
rewrites the CSV; a launcher only decides where and when that call happens.

- `LocalLauncher` (`--launcher=local`, the default): on this machine, `--parallel` runs
  at once, each a thread that waits for its training process.
- `SlurmLauncher` (`--launcher=slurm`): one Slurm job array per sweep invocation, through
  submitit (https://github.com/facebookincubator/submitit), one job per run
  (`SlurmRun`), each with the resources of `--slurm_*`. The sweep prints the job ids, then
  waits for the jobs and rewrites the CSV; with `--nowait` it returns at once and a later
  `--collect_only` rewrites the CSV. `--dry_run` prints the runs' commands and the
  sbatch script without submitting. A run that Slurm preempts or times out saves a
  checkpoint and is requeued, then resumes from it (`SlurmRun` says which signal goes
  where); a run whose job was cancelled is continued by running the sweep again.

The paper-scale sweep (Section 5: 12 families, 200 epochs, betas 0.1 to 10, with and
without KL annealing) on a Slurm cluster, one GPU per run:

  python -m brokenelbo.sweep --launcher=slurm --output_dir=runs/paper_rd \
      --betas=0.1,0.2,0.5,1,2,5,10 --anneal_epochs=0,10 --threads_per_run=8 \
      --slurm_partition=gpu --slurm_gpus_per_node=1 --slurm_mem_gb=32 \
      --slurm_timeout_min=1440

Submitit writes each job's files (its pickled call, result, stdout and stderr, the sbatch
script) to `OUTPUT_DIR/slurm/<job id>/`; `<run dir>.slurm` links to the folder of the run's
latest job. The folders must be on a file system that the compute nodes share, and so must
the working directory (the training runs there, `configs/` resolves there). The array is
submitted held (`--hold`) and released once those folders exist, since Slurm cannot open a
job's output in a folder that does not exist yet.

`tests/test_slurm.py` runs a two-run sweep through the real `sbatch` on a one-node cluster
that it starts on localhost; to run it on an existing cluster instead, name a partition
and a folder that the compute nodes share:

  BROKENELBO_SLURM_PARTITION=debug BROKENELBO_SLURM_DIR=/shared/scratch/$USER \
      python -m pytest -q -n 0 tests/test_slurm.py
"""

import concurrent.futures
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import submitit
from submitit.core import utils as submitit_utils
from submitit.slurm import slurm as submitit_slurm

from brokenelbo import errors

# Job states after which Slurm will not run a job again (squeue's long names); a job that
# `squeue --states=all` no longer lists has ended too.
# (PREEMPTED is not one: a job that Slurm preempts and requeues may pass through it.)
ENDED_STATES = frozenset(['BOOT_FAIL', 'CANCELLED', 'COMPLETED', 'DEADLINE', 'FAILED',
                          'NODE_FAIL', 'OUT_OF_MEMORY', 'TIMEOUT'])


def _execute(sweep, item):
  """`Sweep.execute` of one (run, settings); a run stopped by SIGTERM is an error line."""
  try:
    return sweep.execute(*item)
  except errors.Preempted as e:
    return str(e)


class LocalLauncher:
  """Runs on this machine, `parallel` runs at once (threads that each wait for one training
  process)."""

  def __init__(self, parallel, wait=True):
    if not wait:
      raise errors.UserError('--nowait needs --launcher=slurm: local runs end with the sweep')
    self.parallel = parallel

  def describe(self, sweep, todo):
    """Lines that say what `launch` would run: the training and evaluation commands."""
    return [' '.join(command) for run, _ in todo for command in sweep.commands(run)]

  def launch(self, sweep, todo):
    """Runs `todo` ((run, settings) pairs); returns the error lines of the runs that failed.
    """
    with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
      return [e for e in pool.map(lambda item: _execute(sweep, item), todo) if e]


class SlurmRun(submitit.helpers.Checkpointable):
  """One run of a sweep as a Slurm job: `Sweep.execute` for the run, requeued when Slurm
  preempts it or its time runs out.

  Where each signal goes:

  - SIGUSR2 (submitit's `#SBATCH --signal=USR2@90`: 90 s before the time limit; on
    preemption where the cluster sends the job's signal, `PreemptParameters=
    send_user_signal`; or `scancel --signal=USR2 JOB`) reaches every process of the job
    step. In this process submitit's handler calls `checkpoint`, which sends SIGTERM to
    the training process (`Sweep.stop`), waits until it has saved a checkpoint of the step
    it reached and exited (status 75, `training.preemption`), and returns this call again
    as a `DelayedSubmission`; submitit then requeues the job (`scontrol requeue`), which
    runs the call again: the training resumes from its checkpoint. The training process
    itself never acts on SIGUSR2: the thread that starts it blocks the signal, and a child
    inherits its signal mask.
  - SIGTERM (`scancel JOB`, or a preemption that sends no SIGUSR2) reaches every process of
    the job step too. Submitit's handler ignores it in this process; the training process
    saves a checkpoint and exits 75; the job then exits 75 without a result, so that the
    sweep reports the run unfinished (if Slurm requeues the job itself, as under
    `PreemptMode=REQUEUE`, the job runs the call again and the training resumes). Running
    the sweep again also continues it.

  The call runs `Sweep.execute` in a second thread and waits for it in the main thread,
  the only one where Python runs signal handlers, waking every second so that a signal
  that the kernel handed to another thread is acted on too.
  """

  def __init__(self, sweep, run, settings):
    self.sweep = sweep
    self.run = run
    self.settings = settings
    self._worker = None

  def __getstate__(self):
    return dict(self.__dict__, _worker=None)

  def __call__(self):
    if self.sweep.is_done(self.run):
      return None  # Done by an earlier attempt that was requeued after its end.
    outcome = {}
    job_signal = signal.Signals['SIG' + submitit.JobEnvironment.USR_SIG]

    def execute():
      signal.pthread_sigmask(signal.SIG_BLOCK, {job_signal})
      try:
        outcome['error'] = self.sweep.execute(self.run, self.settings)
      except BaseException as e:  # pylint: disable=broad-except
        outcome['raised'] = e

    self._worker = threading.Thread(target=execute, name='execute')
    self._worker.start()
    while self._worker.is_alive():
      self._worker.join(1.)
    raised = outcome.get('raised')
    if isinstance(raised, errors.Preempted):
      print(f'preempted: {raised}', flush=True)
      raise SystemExit(errors.EXIT_PREEMPTED)  # No result: the run is not over.
    if raised is not None:
      raise raised
    return outcome['error']

  def checkpoint(self, *args, **kwargs):
    """Called by submitit's SIGUSR2 handler: stops the training after a checkpoint and
    returns the call that continues it."""
    del args, kwargs
    self.sweep.stop()
    if self._worker is not None:  # None if the signal came before the run started.
      self._worker.join()
    return submitit.helpers.DelayedSubmission(SlurmRun(self.sweep, self.run, self.settings))


def _additional(options):
  """`KEY=VALUE` or `KEY` (a flag without a value) strings -> submitit's
  `additional_parameters` (written as `#SBATCH --KEY=VALUE`, `_` read as `-`)."""
  parameters = {}
  for option in options:
    key, has_value, value = option.partition('=')
    if not key.strip():
      raise errors.UserError(f'--slurm_additional entries are KEY=VALUE or KEY, got {option!r}')
    parameters[key.strip()] = value if has_value else True
  return parameters


def _exception_line(error):
  """The last line of the traceback that submitit's `FailedJobError` carries."""
  lines = [line for line in str(error).splitlines() if line.strip()]
  dashes = [i for i, line in enumerate(lines) if set(line.strip()) == {'-'}]
  return lines[dashes[-1] - 1] if len(dashes) >= 2 else lines[0] if lines else repr(error)


def _queue_states(array_id):
  """{job id: state} of the jobs of `array_id` that Slurm still lists (`squeue`, every
  state, one line per array task), or `None` if squeue failed (asked again later)."""
  result = subprocess.run(['squeue', '--noheader', '--array', '--states=all',
                           f'--jobs={array_id}', '--format=%i %T'],
                          capture_output=True, text=True, check=False)
  if result.returncode:
    # A job that Slurm has forgotten (MinJobAge after it ended) is an invalid id.
    return {} if 'Invalid job id' in result.stderr else None
  return dict(line.split()[:2] for line in result.stdout.splitlines() if line.strip())


class SlurmLauncher:
  """Submits the runs as one Slurm job array through submitit; see the module docstring.

  Args:
    cpus_per_task: Python `int`, CPUs per run (`--cpus-per-task`).
    gpus_per_node: Python `int`, GPUs per run (`--gpus-per-node`; 0: none asked).
    mem_gb: Python `int` or `None`, memory per run in GB (`--mem`; `None`: the partition's
      default).
    timeout_min: Python `int`, time limit per job in minutes (`--time`); a run that
      reaches it is checkpointed and requeued, at most `max_timeouts` times.
    partition: Python `str` or `None` (`--partition`; `None`: the cluster's default).
    additional: Python `list` of `KEY=VALUE` or `KEY` strings, more sbatch options (e.g.
      `account=abc`, `qos=high`, `exclusive`, `signal=USR2@300`).
    wait: Python `bool`; wait for the jobs (else return after submitting).
    max_timeouts: Python `int`, requeues after time-outs per job (submitit's
      `max_num_timeout`); requeues after preemption are not counted.
  """

  def __init__(self, cpus_per_task, gpus_per_node=0, mem_gb=None, timeout_min=24 * 60,
               partition=None, additional=(), wait=True, max_timeouts=3):
    if cpus_per_task < 1 or gpus_per_node < 0 or timeout_min < 1 or (
        mem_gb is not None and mem_gb < 1):
      raise errors.UserError('--slurm_cpus_per_task, --slurm_timeout_min and --slurm_mem_gb '
                             'must be >= 1, --slurm_gpus_per_node >= 0')
    self.parameters = dict(job_name='brokenelbo', time=timeout_min,
                           cpus_per_task=cpus_per_task,
                           additional_parameters=dict(_additional(additional), hold=True))
    if gpus_per_node:
      self.parameters['gpus_per_node'] = gpus_per_node
    if mem_gb is not None:
      self.parameters['mem'] = f'{mem_gb}G'
    if partition:
      self.parameters['partition'] = partition
    self.wait = wait
    self.max_timeouts = max_timeouts

  @staticmethod
  def folder(sweep):
    """Submitit's folder, one per job (`%j`: `<array id>_<index>`)."""
    return os.path.join(os.path.abspath(sweep.output_dir), 'slurm', '%j')

  def describe(self, sweep, todo):
    """Lines that say what `launch` would submit: the runs' training and evaluation
    commands and the sbatch script of the array."""
    # The command and script that `submitit.SlurmExecutor` submits (it needs Slurm's
    # commands on PATH, a dry run does not).
    folder = self.folder(sweep)
    command = f'{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(folder)}'
    script = submitit_slurm._make_sbatch_string(  # pylint: disable=protected-access
        command=command, folder=folder, map_count=len(todo) if len(todo) > 1 else None,
        **self.parameters)
    return ([' '.join(command) for run, _ in todo for command in sweep.commands(run)] +
            ([f'# sbatch script of the {len(todo)} runs above:', script] if todo else []))

  def _executor(self, sweep):
    try:
      executor = submitit.SlurmExecutor(self.folder(sweep), max_num_timeout=self.max_timeouts)
      executor.update_parameters(**self.parameters)
    except (RuntimeError, ValueError) as e:
      raise errors.UserError(f'--launcher=slurm: {_exception_line(e)}') from None
    return executor

  def launch(self, sweep, todo):
    """Submits `todo` ((run, settings) pairs) as one job array and prints the job ids; then,
    if `wait`, waits for the jobs and returns the error lines of the runs that did not
    finish, else returns `None`."""
    if not todo:
      return []
    executor = self._executor(sweep)
    try:
      jobs = executor.submit_array([SlurmRun(sweep, run, settings) for run, settings in todo])
    except submitit_utils.UncompletedJobError as e:
      raise errors.RunFailed(f'sbatch failed: {_exception_line(e)}') from None
    array_id = jobs[0].job_id.split('_')[0]
    print(f'submitted to Slurm, one job per run (array {array_id}):', flush=True)
    for (run, _), job in zip(todo, jobs):
      model_dir = sweep.model_dir(run)
      link = model_dir + '.slurm'
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)
      if os.path.lexists(link + '.tmp'):
        os.remove(link + '.tmp')
      os.symlink(os.path.relpath(job.paths.folder, os.path.dirname(model_dir)), link + '.tmp')
      os.replace(link + '.tmp', link)
      print(f'  {job.job_id} {model_dir}', flush=True)
    released = subprocess.run(['scontrol', 'release', array_id], capture_output=True,
                              text=True, check=False)
    if released.returncode:
      raise errors.RunFailed(f'scontrol release {array_id} failed ({released.stderr.strip()}); '
                             f'the array was submitted held: release it by hand')
    if not self.wait:
      return None
    return self._wait(sweep, todo, jobs, array_id)

  def _wait(self, sweep, todo, jobs, array_id):
    """Waits until every job has written its result or ended (Slurm no longer runs it);
    returns the error lines."""
    model_dirs = {job.job_id: sweep.model_dir(run) for (run, _), job in zip(todo, jobs)}
    pending = {job.job_id: job for job in jobs}
    states, errors = {}, []
    start = next_query = time.time()
    while pending:
      listed = None
      if time.time() >= next_query:
        listed = _queue_states(array_id)
        # Every 2 s at first, then less often: at most every 30 s for long runs.
        next_query = time.time() + min(30., 2. + (time.time() - start) / 10.)
      for job_id, job in list(pending.items()):
        if listed is not None and job_id in listed:
          states[job_id] = listed[job_id]
        ended = listed is not None and (job_id not in listed or listed[job_id] in ENDED_STATES)
        if job.paths.result_pickle.exists():
          error = self._result(job, model_dirs[job_id])
        elif ended:
          error = (f'{model_dirs[job_id]}: Slurm job {job_id} ended '
                   f'({states.get(job_id, "no longer listed")}) before the run finished; '
                   f'see {model_dirs[job_id]}.slurm/; running the sweep again continues it')
        else:
          continue
        del pending[job_id]
        errors += [error] if error else []
        print(f'job {job_id} ended: {error or "finished " + model_dirs[job_id]}', flush=True)
      if pending:
        time.sleep(1.)
    return errors

  @staticmethod
  def _result(job, model_dir):
    """The error line of a job that wrote its result (`Sweep.execute`'s return)."""
    try:
      return job.result()
    except submitit_utils.UncompletedJobError as e:  # The call raised: its last line.
      return f'{model_dir}: Slurm job {job.job_id} failed: {_exception_line(e)}'
