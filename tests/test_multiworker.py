"""One run over two worker processes on 127.0.0.1 (`tf.distribute.MultiWorkerMirroredStrategy`).

Two runs of 24 steps at the same global batch of 16, of a model whose rate and distortion
do not depend on the seed, so that they must agree to float rounding (as the deterministic
model of `test_distribute`; measured: 1e-7 relative):

- one process (`OneDeviceStrategy` on the CPU), trained in this process: the reference;
- two workers (`python -m brokenelbo.train`) found by `SlurmClusterResolver` from the
  variables of an emulated Slurm job step (two tasks on one node), whose non-chief worker
  is killed (SIGKILL) after the chief's first checkpoint: the chief must fail with one
  line, and the same two commands, started again, must resume from the chief's checkpoint.
  Together they must train like one process, each worker reading its own half of every
  global batch, and leave in `model_dir` what one process leaves, written by the chief.

The reference trains while the chief finds out that its worker is gone. The interruption
and the resumption are two module fixtures, so that the test of the interruption needs only
the first; ports are free ones from the OS, and every wait is bounded.
"""

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.training import checkpoints
from brokenelbo.training import run_dir
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GIN_FILES = ['configs/---.gin', 'configs/smoke.gin']
# 64 examples, 4 steps of 16 per epoch: 24 steps, evaluations (with checkpoints) at 8, 16
# and 24, checkpoints also at 4, 12 and 20; the last 3 are kept.
BINDINGS = ['import test_multiworker', 'train.model = @MultiWorkerToy', 'train.epochs = 6',
            'train.eval_every_epochs = 2', 'train.checkpoint_every_steps = 4',
            'train.summary_images = 0']
MULTI_WORKER = ['train.strategy = @tf.distribute.MultiWorkerMirroredStrategy']
# TensorFlow's resolver counts GPUs with nvidia-smi and cannot give a task none; with
# CUDA_VISIBLE_DEVICES='' each worker's one "GPU" is placed on its CPU.
SLURM = ['MultiWorkerMirroredStrategy.cluster_resolver = @SlurmClusterResolver()',
         'SlurmClusterResolver.auto_set_gpu = False', 'SlurmClusterResolver.gpus_per_node = 2']
# Each step of the run to interrupt sleeps, so that it is still running when killed.
SLOW = ['MultiWorkerToy.delay = 0.1']
TIMEOUT = 240  # Seconds, for any process or any wait.


@gin.configurable
class MultiWorkerToy(tf.Module):
  """A model with the VAE's interface whose rate and distortion do not depend on the seed.

  Args:
    delay: Python `float`, seconds that each replica's training step sleeps.
    batches_dir: Python `str` or `None`; if set, every training step of a replica appends
      (replica id, SHA-256 of each of its examples) to `<batches_dir>/<pid>.jsonl`.
  """

  def __init__(self, delay=0., batches_dir=None):
    super().__init__()
    self.delay = delay
    self.batches_dir = batches_dir
    self.w = tf.Variable(tf.random.stateless_normal([784, 4], seed=[1, 2]) * .01)
    self.b = tf.Variable(tf.zeros([4]))

  def _record(self, replica, x):
    time.sleep(self.delay)
    if self.batches_dir:
      digests = [hashlib.sha256(e.tobytes()).hexdigest() for e in x.numpy()]
      with open(os.path.join(self.batches_dir, f'{os.getpid()}.jsonl'), 'a') as f:
        f.write(json.dumps([int(replica), digests]) + '\n')
    return 0

  def rate_distortion(self, x, seed):
    del seed
    context = tf.distribute.get_replica_context()
    if tf.distribute.has_strategy() and context:  # A replica's training step.
      tf.py_function(self._record, [context.replica_id_in_sync_group, x], tf.int32)
    h = tf.reshape(x, [-1, 784]) @ self.w + self.b
    return tf.reduce_sum(tf.square(h), -1), tf.reduce_sum(tf.square(h - 1.), -1)


def _free_ports(count, consecutive=False):
  """`count` ports that the OS gave as free (consecutive ones if asked)."""
  for _ in range(100):
    sockets = [socket.socket() for _ in range(count)]
    try:
      sockets[0].bind(('127.0.0.1', 0))
      first = sockets[0].getsockname()[1]
      for i, s in enumerate(sockets[1:], 1):
        s.bind(('127.0.0.1', first + i if consecutive else 0))
      return [s.getsockname()[1] for s in sockets]
    except OSError:
      continue
    finally:
      for s in sockets:
        s.close()
  raise RuntimeError('no free ports')


class _Worker:
  """One `python -m brokenelbo.train` process, its stderr in a file."""

  def __init__(self, name, root, model_dir, bindings, env):
    self.name = name
    self.log = os.path.join(root, f'{name}.log')
    self.tmp = os.path.join(root, f'{name}.tmp')  # Its TMPDIR.
    os.makedirs(self.tmp, exist_ok=True)
    with open(self.log, 'w') as log:
      self.process = subprocess.Popen(
          [sys.executable, '-m', 'brokenelbo.train',
           *[f'--gin_file={f}' for f in GIN_FILES],
           *[f'--gin_bindings={b}' for b in bindings], f'--model_dir={model_dir}'],
          cwd=REPO, stdout=subprocess.DEVNULL, stderr=log, text=True,
          env=dict(os.environ, **env, TMPDIR=self.tmp, CUDA_VISIBLE_DEVICES='',
                   TF_CPP_MIN_LOG_LEVEL='2',
                   PYTHONPATH=os.pathsep.join([os.path.join(REPO, 'tests'), REPO])))

  def wait(self, timeout=TIMEOUT):
    """The exit status; a process still running after `timeout` seconds is killed."""
    try:
      return self.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
      self.process.kill()
      return self.process.wait()

  def stderr(self):
    with open(self.log) as f:
      return f.read()

  def errors(self):
    return [l for l in self.stderr().splitlines() if l.startswith(('error:', 'preempted:'))]


def _slurm_pair(name, root, model_dir, bindings, port_base):
  """Two tasks of an emulated Slurm job step on this node (`srun --ntasks=2`)."""
  return [_Worker(f'{name}{i}', root, model_dir,
                  [*bindings, *MULTI_WORKER, *SLURM,
                   f'SlurmClusterResolver.port_base = {port_base}'],
                  dict(SLURM_PROCID=str(i), SLURM_STEP_NUM_TASKS='2',
                       SLURM_STEP_NODELIST='127.0.0.1', SLURM_STEP_TASKS_PER_NODE='2'))
          for i in range(2)]


def _metrics(model_dir):
  with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _losses(model_dir):
  """[(step, train/loss)] from the TensorBoard events of `model_dir`, by step."""
  losses = []
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for event in tf.compat.v1.train.summary_iterator(path):
      for value in event.summary.value:
        if value.tag == 'train/loss':
          losses.append((event.step, float(tf.make_ndarray(value.tensor))))
  return sorted(losses)


def _batches(directory, pid):
  """[(replica, digests) of each step] that process `pid` recorded in `directory`."""
  path = os.path.join(directory, f'{pid}.jsonl')
  if not os.path.exists(path):
    return []
  with open(path) as f:
    return [tuple(json.loads(line)) for line in f]


def _files(directory):
  """Every file under `directory`, relative to it."""
  return sorted(os.path.relpath(os.path.join(folder, name), directory)
                for folder, _, names in os.walk(directory) for name in names)


def _stop(workers):
  """Kills whichever of `workers` still runs (after a failed wait)."""
  for worker in workers:
    if worker.process.poll() is None:
      worker.process.kill()
      worker.process.wait()


@pytest.fixture(scope='module')
def interrupted(tmp_path_factory):
  """The two workers, worker 1 killed after the chief's first checkpoint, until the chief
  has exited; and the one-process reference, trained meanwhile."""
  root = str(tmp_path_factory.mktemp('multiworker'))
  dirs = {name: os.path.join(root, name) for name in ('one', 'two')}
  batches = {name: os.path.join(root, f'{name}_batches') for name in ('one', 'two')}
  for path in batches.values():
    os.makedirs(path)
  started = time.time()
  port_base = _free_ports(2, consecutive=True)[0]
  bindings = [*BINDINGS, *SLOW, f"MultiWorkerToy.batches_dir = '{batches['two']}'"]
  killed = _slurm_pair('killed', root, dirs['two'], bindings, port_base)
  try:
    # Kill the non-chief worker once the chief has written its first checkpoint; the chief
    # then learns from TensorFlow's coordination service that it is gone.
    while not checkpoints.checkpoint_steps(dirs['two']):
      assert time.time() - started < TIMEOUT, 'no checkpoint came'
      assert all(w.process.poll() is None for w in killed), [w.stderr()[-3000:]
                                                            for w in killed]
      time.sleep(.05)
    killed[1].process.send_signal(signal.SIGKILL)
    steps_at_kill = checkpoints.checkpoint_steps(dirs['two'])
    # The reference trains while the chief waits for the coordination service's verdict
    # (seconds: its heartbeat timeout).
    gin.clear_config()
    cli.parse_gin(GIN_FILES, [*BINDINGS, f"MultiWorkerToy.batches_dir = '{batches['one']}'",
                              'train.strategy = @tf.distribute.OneDeviceStrategy',
                              "OneDeviceStrategy.device = '/cpu:0'"])
    try:
      training.train(model_dir=dirs['one'])
    finally:
      gin.clear_config()
    killed_status = [w.wait(timeout=60) for w in killed]
  finally:
    _stop(killed)
  failure = os.path.join(dirs['two'], run_dir.FAILURE_FILE)
  print(f'two workers started, one killed, the chief gone: {time.time() - started:.1f} s')
  return dict(root=root, dirs=dirs, batches=batches, bindings=bindings, port_base=port_base,
              killed=killed, killed_status=killed_status, steps_at_kill=steps_at_kill,
              steps_left=checkpoints.checkpoint_steps(dirs['two']),
              chief_errors=killed[0].errors(),
              failed_json=os.path.exists(failure) and json.load(open(failure)),
              metrics_at_kill=_metrics(dirs['two']))


@pytest.fixture(scope='module')
def runs(interrupted):
  """The same two commands started again, with the same environment, to the end."""
  started = time.time()
  resumed = _slurm_pair('resumed', interrupted['root'], interrupted['dirs']['two'],
                        interrupted['bindings'], interrupted['port_base'])
  try:
    resumed_status = [w.wait() for w in resumed]
  finally:
    _stop(resumed)
  print(f'two workers resumed to the end: {time.time() - started:.1f} s')
  return dict(interrupted, resumed=resumed, resumed_status=resumed_status)


def _check_finished(runs):
  assert runs['resumed_status'] == [0, 0], [w.stderr()[-3000:] for w in runs['resumed']]


def _resumed_at(worker):
  """[(checkpoint, step)] of the `Resumed from` lines of `worker`'s stderr."""
  return re.findall(r'Resumed from (\S+) at step (\d+)\.', worker.stderr())


def test_a_killed_worker_fails_the_run_with_one_line(interrupted):
  # Killed after the first checkpoint, before the end.
  assert interrupted['steps_at_kill'] and max(interrupted['steps_left']) < 24, (
      interrupted['steps_left'])
  assert max(r['step'] for r in interrupted['metrics_at_kill'] or [dict(step=0)]) < 24
  # The chief failed with one line, recorded in failed.json.
  assert interrupted['killed_status'][1] == -signal.SIGKILL
  assert interrupted['killed_status'][0] == errors.EXIT_FAILED, (
      interrupted['killed'][0].stderr()[-3000:])
  # (It names the worker when the coordination service noticed it missing, before a
  # collective operation failed on the broken connection.)
  chief_errors = interrupted['chief_errors']
  assert len(chief_errors) == 1 and re.fullmatch(
      '(error: worker 1|error: a worker) of the cluster stopped, which aborts the run; start '
      'every worker again with the same command to continue from the last checkpoint in '
      + re.escape(interrupted['dirs']['two']), chief_errors[0]), chief_errors
  assert interrupted['failed_json']['error'] == chief_errors[0][len('error: '):]


def test_two_workers_train_like_one_process(runs):
  _check_finished(runs)
  one, two = (_metrics(runs['dirs'][n]) for n in ('one', 'two'))
  # Each evaluation once, though the run was cut and resumed.
  assert [(r['step'], r['split']) for r in two] == [(r['step'], r['split']) for r in one] == [
      (step, split) for step in (8, 16, 24) for split in ('train', 'test')]
  loss_one, loss_two = (_losses(runs['dirs'][n]) for n in ('one', 'two'))
  assert [s for s, _ in loss_two] == [s for s, _ in loss_one] == list(range(2, 25, 2))
  figures = {}
  for key in ('rate', 'distortion', 'elbo'):
    a, b = np.array([r[key] for r in two]), np.array([r[key] for r in one])
    figures[key] = float(np.max(np.abs(a / b - 1.)))
    np.testing.assert_allclose(a, b, rtol=1e-5)  # As test_distribute's deterministic model.
  a, b = (np.array([v for _, v in losses]) for losses in (loss_two, loss_one))
  figures['train/loss'] = float(np.max(np.abs(a / b - 1.)))
  np.testing.assert_allclose(a, b, rtol=1e-5)
  print('two workers (cut and resumed) against one process, largest relative differences:',
        {k: f'{v:.1e}' for k, v in figures.items()},
        f'(final test elbo {two[-1]["elbo"]:.6f} and {one[-1]["elbo"]:.6f})')


def test_each_worker_reads_its_own_half_of_every_global_batch(runs):
  _check_finished(runs)
  one = _batches(runs['batches']['one'], os.getpid())
  assert len(one) == 24
  # Steps up to the checkpoint resumed from were taken by the first pair, the rest by the
  # second; each worker's one replica has the worker's index.
  (resumed_from, _), = _resumed_at(runs['resumed'][0])
  first = int(resumed_from.rsplit('-', 1)[1])
  workers = []
  for i in range(2):
    before = _batches(runs['batches']['two'], runs['killed'][i].process.pid)
    after = _batches(runs['batches']['two'], runs['resumed'][i].process.pid)
    assert len(before) >= first and len(after) == 24 - first, (len(before), len(after))
    workers.append(before[:first] + after)
    assert [r for r, _ in workers[i]] == [i] * 24
  for step, (_, batch) in enumerate(one):
    halves = [w[step][1] for w in workers]
    assert [len(h) for h in halves] == [8, 8]
    assert not set(halves[0]) & set(halves[1]), f'step {step}: the workers share examples'
    assert sorted(halves[0] + halves[1]) == sorted(batch), f'step {step}'
  print(f'each of 24 global batches of 16 (steps 1-{first} before the kill, the rest after): '
        'two disjoint halves of 8 whose union is the one-process batch')


def test_only_the_chief_writes_the_run_directory(runs):
  _check_finished(runs)
  one, two = runs['dirs']['one'], runs['dirs']['two']
  expected = sorted(['checkpoint', 'config.gin', 'metrics.jsonl', 'operative_config.gin',
                     'run.json'] + [
      f'ckpt-{s}.{e}' for s in (16, 20, 24) for e in ('data-00000-of-00001', 'index')])
  # One TensorBoard file per process of the chief: the one process's, the two chiefs'.
  for directory, processes in ((one, 1), (two, 2)):
    events = [f for f in _files(directory) if f.startswith('events.out.tfevents.')]
    assert len(events) == processes, _files(directory)
    assert [f for f in _files(directory) if f not in events] == expected
  state = tf.train.get_checkpoint_state(two)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'ckpt-16', 'ckpt-20', 'ckpt-24']
  # The other worker wrote its share in a folder of its own, now gone, as is anything it
  # left in its TMPDIR.
  chief, other = runs['resumed']
  folder = re.search(r'is not the chief: it writes its share of the run in (\S+) ',
                     other.stderr()).group(1)
  assert folder.startswith(other.tmp) and not os.path.exists(folder)
  assert os.listdir(other.tmp) == [] and os.listdir(chief.tmp) == []
  assert 'is not the chief' not in chief.stderr() + runs['killed'][0].stderr()


def test_both_workers_resume_from_the_chiefs_newest_checkpoint(runs):
  _check_finished(runs)
  model_dir = runs['dirs']['two']
  newest = max(runs['steps_left'])
  resumed = [_resumed_at(w) for w in runs['resumed']]
  assert resumed[0] == resumed[1] == [(os.path.join(model_dir, f'ckpt-{newest}'), str(newest))]
  assert not os.path.exists(os.path.join(model_dir, run_dir.FAILURE_FILE))
  assert not os.path.exists(os.path.join(model_dir, checkpoints.DAMAGED_DIR))
  print(f'killed worker 1 after checkpoint {newest}; both workers resumed from it')


@pytest.mark.parametrize('bindings, environment, message', [
    # Collective operations are configured when TensorFlow starts: here it has.
    ([], dict(TF_CONFIG=json.dumps(dict(cluster=dict(worker=['127.0.0.1:1', '127.0.0.1:2']),
                                        task=dict(type='worker', index=0)))),
     'Collective ops must be configured at program startup'),
    (SLURM[:1], {}, 'SLURM_PROCID not found in environment'),
])
def test_a_strategy_that_cannot_be_created_is_a_one_line_error(tmp_path, monkeypatch,
                                                               bindings, environment,
                                                               message):
  tf.constant(0.)  # TensorFlow has started in this process.
  monkeypatch.delenv('SLURM_PROCID', raising=False)
  for name, value in environment.items():
    monkeypatch.setenv(name, value)
  cli.parse_gin(GIN_FILES, [*BINDINGS, *MULTI_WORKER, *bindings])
  with pytest.raises(errors.UserError, match=f'^train.strategy cannot be created: .*{message}'):
    training.train(model_dir=str(tmp_path / 'run'))
  assert not os.path.exists(tmp_path / 'run')
