"""The studies through a real Slurm (`sbatch` via submitit) against the local launcher.

The module starts a one-node Slurm cluster on localhost in a temporary folder: Debian's
`munged`, `slurmctld` and `slurmd` (installed with apt-get if absent; skipped if they cannot
be), with a config of its own (free ports, its own munge socket and key, state and spool
folders inside the temporary folder, the node's real CPUs and memory from `slurmd -C`).
With `BROKENELBO_SLURM_PARTITION` set it uses that partition of the existing cluster
instead, and `BROKENELBO_SLURM_DIR` (a folder the compute nodes share) for the runs.

One two-run smoke sweep (family `---`, betas 0.5 and 1, 30 epochs of 4 steps) goes through
`--launcher=slurm` while the local launcher runs the same sweep. Once both Slurm runs have
saved a checkpoint, job 0 gets SIGUSR2 (what Slurm sends before a time limit): it must
checkpoint, be requeued and resume; job 1 is cancelled (SIGTERM): the sweep reports it, and
running the sweep again resumes it. The CSV must then equal the local launcher's in every
column but `run_dir`, and the final metrics must be equal to every digit. The LiBI table's
smoke study goes the same way: one of its two jobs cancelled mid-run, the study run again,
its records equal to the local study's.
"""

import csv
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

# Apart from the suite (pytest.ini): `python -m pytest tests -q -m slurm`.
pytestmark = pytest.mark.slurm

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWEEP = [sys.executable, '-m', 'brokenelbo.sweep', '--families=---', '--betas=0.5,1',
         '--gin_file=configs/smoke.gin',
         # Long enough that the signals, sent once both runs have saved their first
         # checkpoint (an evaluation's), land while they train: 112 steps and 14
         # evaluations are left then (the smoke networks take milliseconds a step).
         '--gin_bindings=train.epochs = 30', '--gin_bindings=train.eval_every_epochs = 2',
         # No information suite: its evaluation is the same `Study.execute` step under
         # either launcher (tests/test_sweep.py measures it), and here it would double the
         # processes that each job starts (about 2.5 minutes more on 2 cores).
         '--noinformation']
STEPS = 120  # 30 epochs of 4 steps (configs/smoke.gin).
FIRST_CHECKPOINT = 8  # The first evaluation's, after 2 epochs.
DAEMONS = ('munged', 'slurmctld', 'slurmd')

# cred_expire: Slurm holds a requeued job back for this many seconds plus one (default
# 120; on another cluster, BROKENELBO_SLURM_PARTITION, the test waits out its own);
# sched_interval: the main scheduler's period, which starts it (default 60 s).
SLURM_CONF = """ClusterName=c{port}
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge.socket,cred_expire=5
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
SchedulerParameters=sched_interval=1
MpiDefault=none
ReturnToService=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
{node} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def _free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def _install():
  """Installs Debian's Slurm and munge if absent; skips the module if they cannot be."""
  if all(shutil.which(d) for d in (*DAEMONS, 'sbatch')):
    return 0.
  if os.geteuid() != 0 or not shutil.which('apt-get'):
    pytest.skip('Slurm is not installed and cannot be here (needs apt-get, as root)')
  start = time.time()
  env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
  for command in (['apt-get', 'update', '-q'],
                  ['apt-get', 'install', '-y', '-q', 'slurmctld', 'slurmd', 'munge']):
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode:
      pytest.skip(f'{" ".join(command)} failed (no network?): {result.stderr[-500:]}')
  return time.time() - start


def _start_cluster(root):
  """Starts munged, slurmctld, slurmd on localhost; returns (env, processes)."""
  key = os.path.join(root, 'munge.key')
  with open(key, 'wb') as f:
    f.write(os.urandom(1024))
  os.chmod(key, 0o400)
  os.chmod(root, 0o755)
  for folder in ('state', 'spool'):
    os.makedirs(os.path.join(root, folder))
  node = subprocess.run(['slurmd', '-C'], capture_output=True, text=True,
                        check=True).stdout.splitlines()[0]
  node = re.sub(r'^NodeName=\S+', 'NodeName=localhost', node)
  conf = os.path.join(root, 'slurm.conf')
  with open(conf, 'w') as f:
    f.write(SLURM_CONF.format(root=root, port=_free_port(), slurmd_port=_free_port(),
                              node=node))
  env = dict(os.environ, SLURM_CONF=conf)
  commands = [['munged', '-F', '--force', f'--socket={root}/munge.socket', f'--key-file={key}',
               f'--pid-file={root}/munged.pid', f'--seed-file={root}/munged.seed',
               f'--log-file={root}/munged.log'],
              ['slurmctld', '-D', '-i', '-f', conf],
              ['slurmd', '-D', '-N', 'localhost', '-f', conf]]
  processes = []
  for command in commands:
    with open(os.path.join(root, command[0] + '.out'), 'w') as out:
      processes.append(subprocess.Popen(command, env=env, stdout=out, stderr=out))
    time.sleep(0.5)  # munged's socket before slurmctld, slurmctld before slurmd.
  return env, processes


def _logs(root):
  return '\n'.join(f'--- {name}\n{open(os.path.join(root, name)).read()[-3000:]}'
                   for name in sorted(os.listdir(root)) if name.endswith(('.log', '.out')))


@pytest.fixture(scope='module')
def cluster():
  """{'env', 'partition', 'dir'} of a Slurm cluster: our own, or the one named by
  BROKENELBO_SLURM_PARTITION."""
  if os.environ.get('BROKENELBO_SLURM_PARTITION'):
    shared = tempfile.mkdtemp(dir=os.environ.get('BROKENELBO_SLURM_DIR'))
    yield dict(env=dict(os.environ), partition=os.environ['BROKENELBO_SLURM_PARTITION'],
               dir=shared)
    shutil.rmtree(shared, ignore_errors=True)
    return
  installed = _install()
  start = time.time()
  root = tempfile.mkdtemp(prefix='slurm')
  env, processes = _start_cluster(root)
  try:
    for _ in range(60):
      state = subprocess.run(['sinfo', '--noheader', '--format=%T'], env=env,
                             capture_output=True, text=True, check=False).stdout.strip()
      if state == 'idle' or any(p.poll() is not None for p in processes):
        break
      time.sleep(0.5)
    assert state == 'idle', f'the cluster did not start (node: {state!r})\n{_logs(root)}'
    print(f'\ncluster: installed in {installed:.1f} s, started in {time.time() - start:.1f} s')
    yield dict(env=env, partition='test', dir=root)
  finally:
    subprocess.run(['scancel', '--full', f'--user={os.getuid()}'], env=env, check=False)
    for _ in range(20):  # The jobs' processes end before the daemons that track them.
      if not subprocess.run(['squeue', '--noheader'], env=env, capture_output=True,
                            text=True, check=False).stdout.strip():
        break
      time.sleep(0.5)
    for process in reversed(processes):
      process.send_signal(signal.SIGTERM)
      try:
        process.wait(10)
      except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    shutil.rmtree(root, ignore_errors=True)


def _read_csv(path):
  with open(path) as f:
    rows = list(csv.DictReader(f))
  print(f'{path}:\n' + ''.join(open(path).readlines()))
  return [{k: v for k, v in row.items() if k != 'run_dir'} for row in rows]


def _final_metrics(run_dir):
  with open(os.path.join(run_dir, 'run.json')) as f:
    return json.load(f)['metrics']


def _submitted_jobs(process, count):
  """{run dir: job id} of the first `count` jobs a study command prints as submitted."""
  jobs = {}
  for line in process.stdout:
    match = re.match(r'  (\d+_\d+) (\S+)$', line)
    if match:
      jobs[match.group(2)] = match.group(1)
    if len(jobs) == count:
      break
  assert len(jobs) == count, process.stderr.read()[-3000:]
  return jobs


def _job_logs(run_dir):
  """The tails of the files in a run's submitit folder (`<run_dir>.slurm/`)."""
  folder = run_dir + '.slurm'
  return '\n'.join(f'--- {name}\n{open(os.path.join(folder, name), errors="replace").read()[-4000:]}'
                   for name in sorted(os.listdir(folder)) if name.endswith(('.out', '.err')))


def _state(job_id, env):
  out = subprocess.run(['squeue', '--noheader', '--states=all', f'--jobs={job_id}',
                        '--format=%T'], env=env, capture_output=True, text=True,
                       check=False).stdout.split()
  return out[0] if out else 'GONE'


def test_slurm_sweep_requeues_resumes_and_equals_the_local_sweep(cluster):
  start = time.time()
  env = cluster['env']
  local_dir = os.path.join(cluster['dir'], 'local')
  slurm_dir = os.path.join(cluster['dir'], 'slurm')
  slurm = [*SWEEP, f'--output_dir={slurm_dir}', '--launcher=slurm',
           f'--slurm_partition={cluster["partition"]}', '--slurm_cpus_per_task=1',
           '--slurm_mem_gb=2', '--slurm_timeout_min=60']
  # The local launcher, a dry run and the Slurm launcher on the same sweep, at once.
  local, dry, sweep = (
      subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
      for command in ([*SWEEP, f'--output_dir={local_dir}'],
                      [*slurm, f'--output_dir={slurm_dir}_dry', '--dry_run'], slurm))
  jobs = _submitted_jobs(sweep, 2)
  (requeued_dir, requeued), (cancelled_dir, cancelled) = sorted(jobs.items())
  print(f'jobs: {jobs}')
  # Once each run has saved a checkpoint: SIGUSR2 to one job, SIGTERM (scancel) to the other.
  while not all(os.path.exists(os.path.join(d, 'checkpoint')) for d in jobs):
    assert sweep.poll() is None, sweep.stderr.read()[-3000:]
    time.sleep(0.2)
  subprocess.run(['scancel', '--signal=USR2', requeued], env=env, check=True)
  subprocess.run(['scancel', cancelled], env=env, check=True)
  states = {requeued: ['RUNNING'], cancelled: ['RUNNING']}
  while sweep.poll() is None:
    for job_id, seen in states.items():
      state = _state(job_id, env)
      # The requeued job waits out Slurm's hold (cred_expire + 1 s). Forced to start at
      # once (`scontrol update StartTime=now`), its new start raced the node's end of the
      # old one and failed at once (FAILED, never RUNNING) in 1 of 7 runs here.
      if state != seen[-1]:
        seen.append(state)
    time.sleep(0.2)
  out, err = sweep.communicate()
  print(f'states: {states}\n{out}{err[-1500:]}')
  assert sweep.returncode == 1
  assert re.search(rf'failed: {re.escape(cancelled_dir)}: Slurm job {cancelled} ended '
                   r'\(CANCELLED\) before the run finished', err), err[-3000:]
  assert states[cancelled][-1] == 'CANCELLED'
  seen = states[requeued]  # Requeued, then running again.
  assert 'PENDING' in seen and 'RUNNING' in seen[seen.index('PENDING'):], (
      f'{seen}\n{_job_logs(requeued_dir)}\n{_logs(cluster["dir"])}')

  # Running the sweep again resubmits the cancelled run only; it resumes.
  again = subprocess.run(slurm, cwd=REPO, env=env, capture_output=True, text=True,
                         check=False)
  print(again.stdout)
  assert again.returncode == 0, again.stderr[-3000:]
  assert '2 runs, 1 finished, 1 to do' in again.stdout
  assert local.communicate()[1] is not None and local.returncode == 0, 'local sweep failed'
  # What would have been submitted: the runs' commands and the array's sbatch options.
  out, err = dry.communicate()
  assert dry.returncode == 0, err[-3000:]
  assert out.count('-m brokenelbo.train') == 2 and not os.path.exists(slurm_dir + '_dry')
  for option in ('--array=0-1%2', '--cpus-per-task=1', '--mem=2G', '--time=60', '--hold',
                 f'--partition={cluster["partition"]}', '--signal=USR2@90'):
    assert f'#SBATCH {option}\n' in out, option

  # Each interrupted run stopped after a checkpoint mid-run and resumed from it.
  for run_dir in jobs:
    with open(run_dir + '.log') as f:
      log = f.read()
    step = int(re.search(rf'preempted: stopped by SIGTERM at step (\d+) of {STEPS}',
                         log).group(1))
    assert FIRST_CHECKPOINT <= step < STEPS
    assert re.search(rf'Resumed from \S+ckpt-{step} at step {step}\.', log)
    assert os.path.islink(run_dir + '.slurm')
  assert _read_csv(os.path.join(slurm_dir, 'results.csv')) == _read_csv(
      os.path.join(local_dir, 'results.csv'))
  for run_dir in jobs:
    assert _final_metrics(run_dir) == _final_metrics(run_dir.replace(slurm_dir, local_dir))
  print(f'test: {time.time() - start:.1f} s')


# The LiBI table's smoke study: the VAE and beta-VAE settings of LinearJTEx data set 0,
# long enough (2,000 full-batch steps) that a cancellation lands while they train.
LIBI = [sys.executable, '-m', 'brokenelbo.libi', '--profile=smoke', '--datasets=linear_jtex',
        '--methods=vae,beta_vae', '--gin_bindings=EPOCHS = 2000',
        '--gin_bindings=train.checkpoint_every_steps = 50',
        '--gin_bindings=train.log_every_steps = 50']


def _libi_records(output_dir):
  with open(os.path.join(output_dir, 'table1.json')) as f:
    return [{k: v for k, v in r.items() if k != 'run_dir'} for r in json.load(f)['runs']]


def test_slurm_libi_study_resumes_and_equals_the_local_study(cluster):
  env = cluster['env']
  local_dir = os.path.join(cluster['dir'], 'libi_local')
  slurm_dir = os.path.join(cluster['dir'], 'libi_slurm')
  slurm = [*LIBI, f'--output_dir={slurm_dir}', f'--results={slurm_dir}/table1.json',
           '--launcher=slurm', f'--slurm_partition={cluster["partition"]}',
           '--slurm_cpus_per_task=1', '--slurm_mem_gb=2', '--slurm_timeout_min=60']
  local, study = (
      subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
      for command in ([*LIBI, f'--output_dir={local_dir}',
                       f'--results={local_dir}/table1.json'], slurm))
  jobs = _submitted_jobs(study, 2)
  cancelled_dir = sorted(jobs)[0]
  while not os.path.exists(os.path.join(cancelled_dir, 'checkpoint')):
    assert study.poll() is None, study.stderr.read()[-3000:]
    time.sleep(0.1)
  subprocess.run(['scancel', jobs[cancelled_dir]], env=env, check=True)
  out, err = study.communicate()
  print(out, err[-1500:])
  assert study.returncode == 1
  assert re.search(rf'failed: {re.escape(cancelled_dir)}: Slurm job {jobs[cancelled_dir]} '
                   r'ended \(CANCELLED\) before the run finished', err), err[-3000:]
  # Running the study again resubmits the cancelled run only; it resumes.
  again = subprocess.run(slurm, cwd=REPO, env=env, capture_output=True, text=True,
                         check=False)
  assert again.returncode == 0, again.stderr[-3000:]
  assert '2 settings, 1 evaluated before, 1 to do' in again.stderr
  with open(cancelled_dir + '.log') as f:
    log = f.read()
  step = int(re.search(r'preempted: stopped by SIGTERM at step (\d+) of 2000', log).group(1))
  assert re.search(rf'Resumed from \S+ckpt-{step} at step {step}\.', log)
  assert local.communicate()[1] is not None and local.returncode == 0, 'local study failed'
  assert _libi_records(slurm_dir) == _libi_records(local_dir)
