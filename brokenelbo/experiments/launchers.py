r"""Launchers: where the runs of a study (`experiments.study`) execute.

Each launcher calls `study.execute(run)` once per run that is not done; it only decides
where and when. `define_flags` and `from_flags` give every study command (`sweep`,
`libi`) the same flags.

- `LocalLauncher` (`--launcher=local`): on this machine, `--parallel` runs at once, each a
  thread that waits for its processes.
- `SlurmLauncher` (`--launcher=slurm`): one Slurm job array per invocation, through
  submitit (https://github.com/facebookincubator/submitit), one job per run
  (`SlurmRun`), with the resources of `--slurm_*`. It prints the job ids and waits for the
  jobs (`--nowait`: returns at once). Submitit writes each job's files to
  `OUTPUT_DIR/slurm/<job id>/` and `<run dir>.slurm` links to the run's latest; those
  folders and the working directory must be on a file system the compute nodes share. The
  array is submitted held and released once the folders exist. A run that Slurm preempts
  or times out saves a checkpoint, is requeued and resumes (`SlurmRun` says which signal
  goes where); a cancelled run is continued by running the same command again.

`tests/test_slurm.py` runs a sweep through the real `sbatch` on a one-node cluster it
starts on localhost, or on an existing cluster:

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

from absl import flags

from brokenelbo import errors

# Job states after which Slurm will not run a job again (squeue's long names); a job that
# `squeue --states=all` no longer lists has ended too.
# (PREEMPTED is not one: a job that Slurm preempts and requeues may pass through it.)
ENDED_STATES = frozenset(['BOOT_FAIL', 'CANCELLED', 'COMPLETED', 'DEADLINE', 'FAILED',
                          'NODE_FAIL', 'OUT_OF_MEMORY', 'TIMEOUT'])


def _execute(study, run):
  """`study.execute(run)`; a run stopped by SIGTERM is an error line."""
  try:
    return study.execute(run)
  except errors.Preempted as e:
    return str(e)


class LocalLauncher:
  """Runs on this machine, `parallel` runs at once (threads that each wait for one training
  process)."""

  def __init__(self, parallel, wait=True):
    if not wait:
      raise errors.UserError('--nowait needs --launcher=slurm: local runs end with the command')
    self.parallel = parallel

  def describe(self, study, todo):
    """Lines that say what `launch` would run: the training and evaluation commands."""
    return [' '.join(command) for run in todo for command in study.commands(run)]

  def launch(self, study, todo):
    """Runs the runs `todo` of `study`; returns the error lines of the runs that failed."""
    with concurrent.futures.ThreadPoolExecutor(self.parallel) as pool:
      return [e for e in pool.map(lambda run: _execute(study, run), todo) if e]


class SlurmRun(submitit.helpers.Checkpointable):
  """One run of a study as a Slurm job: `study.execute(run)`, requeued when Slurm
  preempts it or its time runs out.

  Where each signal goes:

  - SIGUSR2 (submitit's `#SBATCH --signal=USR2@90`: 90 s before the time limit; on
    preemption where the cluster sends the job's signal, `PreemptParameters=
    send_user_signal`; or `scancel --signal=USR2 JOB`) reaches every process of the job
    step. In this process submitit's handler calls `checkpoint`, which sends SIGTERM to
    the training process (`Study.stop`), waits until it has saved a checkpoint of the step
    it reached and exited (status 75, `training.preemption`), and returns this call again
    as a `DelayedSubmission`; submitit then requeues the job (`scontrol requeue`), which
    runs the call again: the training resumes from its checkpoint. The training process
    itself never acts on SIGUSR2: the thread that starts it blocks the signal, and a child
    inherits its signal mask.
  - SIGTERM (`scancel JOB`, or a preemption that sends no SIGUSR2) reaches every process of
    the job step too. Submitit's handler ignores it in this process; the training process
    saves a checkpoint and exits 75; the job then exits 75 without a result, so that the
    study reports the run unfinished (if Slurm requeues the job itself, as under
    `PreemptMode=REQUEUE`, the job runs the call again and the training resumes). Running
    the same command again also continues it.

  The call runs `study.execute` in a second thread and waits for it in the main thread,
  the only one where Python runs signal handlers, waking every second so that a signal
  that the kernel handed to another thread is acted on too.
  """

  def __init__(self, study, run):
    self.study = study
    self.run = run
    self._worker = None

  def __getstate__(self):
    return dict(self.__dict__, _worker=None)

  def __call__(self):
    if self.study.is_done(self.run):
      return None  # Done by an earlier attempt that was requeued after its end.
    outcome = {}
    job_signal = signal.Signals['SIG' + submitit.JobEnvironment.USR_SIG]

    def execute():
      signal.pthread_sigmask(signal.SIG_BLOCK, {job_signal})
      try:
        outcome['error'] = self.study.execute(self.run)
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
    self.study.stop()
    if self._worker is not None:  # None if the signal came before the run started.
      self._worker.join()
    return submitit.helpers.DelayedSubmission(SlurmRun(self.study, self.run))


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
  def folder(study):
    """Submitit's folder, one per job (`%j`: `<array id>_<index>`)."""
    return os.path.join(os.path.abspath(study.output_dir), 'slurm', '%j')

  def describe(self, study, todo):
    """Lines that say what `launch` would submit: the runs' training and evaluation
    commands and the sbatch script of the array."""
    # The command and script that `submitit.SlurmExecutor` submits (it needs Slurm's
    # commands on PATH, a dry run does not).
    folder = self.folder(study)
    command = f'{shlex.quote(sys.executable)} -u -m submitit.core._submit {shlex.quote(folder)}'
    script = submitit_slurm._make_sbatch_string(  # pylint: disable=protected-access
        command=command, folder=folder, map_count=len(todo) if len(todo) > 1 else None,
        **self.parameters)
    return ([' '.join(command) for run in todo for command in study.commands(run)] +
            ([f'# sbatch script of the {len(todo)} runs above:', script] if todo else []))

  def _executor(self, study):
    try:
      executor = submitit.SlurmExecutor(self.folder(study), max_num_timeout=self.max_timeouts)
      executor.update_parameters(**self.parameters)
    except (RuntimeError, ValueError) as e:
      raise errors.UserError(f'--launcher=slurm: {_exception_line(e)}') from None
    return executor

  def launch(self, study, todo):
    """Submits the runs `todo` of `study` as one job array and prints the job ids; then, if
    `wait`, waits for the jobs and returns the error lines of the runs that did not
    finish, else returns `None`."""
    if not todo:
      return []
    executor = self._executor(study)
    try:
      jobs = executor.submit_array([SlurmRun(study, run) for run in todo])
    except submitit_utils.UncompletedJobError as e:
      raise errors.RunFailed(f'sbatch failed: {_exception_line(e)}') from None
    array_id = jobs[0].job_id.split('_')[0]
    print(f'submitted to Slurm, one job per run (array {array_id}):', flush=True)
    for run, job in zip(todo, jobs):
      model_dir = study.model_dir(run)
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
    return self._wait(study, todo, jobs, array_id)

  def _wait(self, study, todo, jobs, array_id):
    """Waits until every job has written its result or ended (Slurm no longer runs it);
    returns the error lines."""
    model_dirs = {job.job_id: study.model_dir(run) for run, job in zip(todo, jobs)}
    pending = {job.job_id: job for job in jobs}
    states, failures = {}, []
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
                   f'see {model_dirs[job_id]}.slurm/; running the same command again continues it')
        else:
          continue
        del pending[job_id]
        failures += [error] if error else []
        print(f'job {job_id} ended: {error or "finished " + model_dirs[job_id]}', flush=True)
      if pending:
        time.sleep(1.)
    return failures

  @staticmethod
  def _result(job, model_dir):
    """The error line of a job that wrote its result (`study.execute`'s return)."""
    try:
      return job.result()
    except submitit_utils.UncompletedJobError as e:  # The call raised: its last line.
      return f'{model_dir}: Slurm job {job.job_id} failed: {_exception_line(e)}'


def define_flags(parallel=2):
  """The flags of a command that runs a study: where its runs execute (`--launcher`,
  `--parallel`, `--threads_per_run`, `--nowait`, `--slurm_*`)."""
  flags.DEFINE_enum('launcher', 'local', ['local', 'slurm'],
                    'Where runs execute: local (this machine) or slurm (one job array).')
  flags.DEFINE_integer('parallel', parallel, 'Runs at once (local).')
  flags.DEFINE_integer('threads_per_run', 1, 'TensorFlow intra- and inter-op threads per run.')
  flags.DEFINE_bool('nowait', False, 'Return once the jobs are submitted (slurm); '
                    '--collect_only rewrites the results later.')
  flags.DEFINE_string('slurm_partition', None, 'Partition (default: the cluster\'s).')
  flags.DEFINE_integer('slurm_cpus_per_task', None,
                       'CPUs per run (default: --threads_per_run).')
  flags.DEFINE_integer('slurm_gpus_per_node', 0, 'GPUs per run.')
  flags.DEFINE_integer('slurm_mem_gb', None, 'Memory per run in GB (default: the '
                       'partition\'s).')
  flags.DEFINE_integer('slurm_timeout_min', 24 * 60,
                       'Time limit per job in minutes; a run that reaches it is '
                       'checkpointed and requeued (at most 3 times).')
  flags.DEFINE_list('slurm_additional', [], 'More sbatch options, KEY=VALUE or KEY, e.g. '
                    'account=abc,qos=high,exclusive.')


def check_flags(values):
  """Raises `UserError` for `--parallel` or `--threads_per_run` below 1 (`values`:
  `flags.FLAGS`)."""
  if values.parallel < 1 or values.threads_per_run < 1:
    raise errors.UserError('--parallel and --threads_per_run must be >= 1')


def from_flags(values):
  """The launcher that the flags of `define_flags` name (`values`: `flags.FLAGS`)."""
  if values.launcher == 'local':
    return LocalLauncher(values.parallel, wait=not values.nowait)
  return SlurmLauncher(
      cpus_per_task=(values.threads_per_run if values.slurm_cpus_per_task is None
                     else values.slurm_cpus_per_task),
      gpus_per_node=values.slurm_gpus_per_node, mem_gb=values.slurm_mem_gb,
      timeout_min=values.slurm_timeout_min, partition=values.slurm_partition,
      additional=values.slurm_additional, wait=not values.nowait)


def run_study(launcher, study, todo):
  """Launches the runs `todo` of `study`, then rewrites its results; returns the number of
  runs in them (`Study.collect`), or `None` if the launcher did not wait.

  Raises:
    RunFailed: naming how many runs failed (their lines on stderr first).
  """
  failures = launcher.launch(study, todo)
  if failures is None:
    return None
  written = study.write_results()
  if failures:
    for error in failures:
      print(f'failed: {error}', file=sys.stderr)
    raise errors.RunFailed(f'{len(failures)} of {len(todo)} runs failed (listed above); rerun '
                           'the same command to retry them')
  return written
