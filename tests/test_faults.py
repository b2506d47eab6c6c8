"""Faults that must end in one `error: ...` line and a non-zero exit, or in a recovery.

Each test reproduces a fault with real processes and files: a diverged run, damaged
checkpoints and checkpoint index, two writers on one run directory, a full disk (a 512 KiB
tmpfs, where this user may mount one), unwritable output folders, empty or non-finite sweep
grids. Nothing the user produced may be lost, and no temporary file may stay behind.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.experiments import grid
from brokenelbo.experiments import sweep
from brokenelbo.training import checkpoints
from brokenelbo.training import restore
from brokenelbo.training import run_dir
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli
from brokenelbo.training import run_record

# One of the longest modules: it starts before the short ones (conftest.py).
pytestmark = pytest.mark.first

NATIVE_LOG = re.compile(r'^([IWEF]\d{4} |WARNING: All log messages before absl|'
                        r'To enable the following instructions)')
SMOKE = ['--gin_file=configs/---.gin', '--gin_file=configs/smoke.gin']
# 12 steps of batch 16 on 64 examples, a checkpoint every 2 steps (3 kept: 8, 10, 12).
CHECKPOINTED = ['train.epochs = 3', 'train.checkpoint_every_steps = 2',
                'train.summary_images = 0']


def _own_lines(stderr):
  """The program's own stderr lines: no TensorFlow native logging, no absl INFO/WARNING."""
  return [l for l in stderr.splitlines()
          if l and not NATIVE_LOG.match(l) and not re.match(r'^[IW]\d{4} ', l)]


def _finish(results):
  """{name: (exit status, the program's `error:` lines, all its stderr)} of the commands
  `results` ({name: `subprocess.CompletedProcess`}, from conftest's `commands`: each runs
  as `python -m brokenelbo.<module>` would, without a process start of its own)."""
  return {name: (result.returncode,
                 [l for l in _own_lines(result.stderr) if l.startswith(('error:', 'preempted:'))],
                 result.stderr)
          for name, result in results.items()}


def _strict_json_lines(path):
  """The records of a JSON-lines file, refusing NaN and Infinity (not JSON)."""
  def refuse(constant):
    raise ValueError(f'{path} holds {constant}, which is not JSON')
  with open(path) as f:
    return [json.loads(line, parse_constant=refuse) for line in f]


def _smoke_train(model_dir, bindings):
  """`---` at smoke sizes with `bindings`, trained in this process."""
  gin.clear_config()
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], list(bindings))
  try:
    return training.train(model_dir=model_dir)
  finally:
    gin.clear_config()


def _train_in_process(model_dir, bindings=()):
  return _smoke_train(model_dir, [*CHECKPOINTED, *bindings])


def test_a_diverged_run_fails_with_one_line_and_strict_json(commands, tmp_path):
  # One step applied, then NaN: the final evaluation is not finite.
  model_dir = tmp_path / 'run'
  status, lines, stderr = _finish({'run': commands(
      'train', *SMOKE, f'--model_dir={model_dir}',
      '--gin_bindings=normalized_adam.learning_rate = 1e12')})['run']
  assert status == errors.EXIT_FAILED, stderr[-2000:]
  assert len(lines) == 1, lines
  assert re.search(r'final evaluation is not finite \(train rate nan', lines[0]), lines
  assert checkpoints.checkpoint_steps(str(model_dir)) == []
  with open(model_dir / run_dir.FAILURE_FILE) as f:  # For the sweep, and the user.
    assert json.load(f)['error'] == lines[0][len('error: '):]
  # metrics.jsonl is strict JSON: the non-finite values are null.
  records = _strict_json_lines(model_dir / 'metrics.jsonl')
  assert [r['split'] for r in records] == ['train', 'test']
  assert all(r[k] is None for r in records for k in ('rate', 'distortion', 'elbo'))
  # The chunk in which no step was applied says so, instead of printing zero losses.
  assert 'no step applied: all 2 had a non-finite loss or gradient' in stderr
  assert not re.search(r'loss 0\.000 rate 0\.000', stderr)


@pytest.mark.parametrize('bindings, message', [
    # Ten bad steps in a row before any checkpoint could be written.
    (['normalized_adam.learning_rate = 1e12', 'train.epochs = 5'],
     r'10 consecutive steps .* no checkpoint was written in'),
    # An infinite loss from the first step: no step is ever applied.
    (['beta_schedule.beta = 1e30', 'train.epochs = 1'],
     r'no training step of .* had a finite loss'),
])
def test_runs_that_learned_nothing_fail(tmp_path, bindings, message):
  model_dir = str(tmp_path / 'run')
  with pytest.raises(errors.RunFailed, match=message):
    _train_in_process(model_dir, ['train.checkpoint_every_steps = 2', *bindings])
  assert checkpoints.checkpoint_steps(model_dir) == []
  assert os.path.exists(os.path.join(model_dir, run_dir.FAILURE_FILE))


def test_sweep_gives_a_failed_run_no_row_and_tries_it_again(commands, tmp_path):
  output_dir = str(tmp_path / 'sweep')
  args = ['--families=---', '--betas=1e30', '--gin_file=configs/smoke.gin',
          f'--output_dir={output_dir}']
  failed_dir = os.path.join(output_dir, '---', 'beta=1e+30_anneal=0_seed=0')
  status, lines, stderr = _finish({'sweep': commands('sweep', *args)})['sweep']
  assert status == errors.EXIT_FAILED, stderr[-2000:]
  assert lines == ['error: 1 of 1 runs failed (listed above); rerun the same command to '
                    'retry them'], lines
  failed = [l for l in _own_lines(stderr) if l.startswith('failed:')]
  assert len(failed) == 1 and failed_dir in failed[0], failed
  assert 'no training step' in failed[0]
  with open(os.path.join(output_dir, 'results.csv')) as f:
    assert len(f.read().splitlines()) == 1  # The header: no row for a failed run.
  assert not os.path.exists(os.path.join(failed_dir, run_record.RUN_RECORD))
  # Its final metrics are finite (nothing was learned), yet it is no finished run: the next
  # invocation (what `sweep` decides for its `--dry_run`) would train it again.
  run, = grid.make_grid(['---'], ['1e30'], ['0'], '+', ['0'])
  again = sweep.Sweep(output_dir, os.path.join(output_dir, 'results.csv'),
                      ['configs/smoke.gin'], [], threads_per_run=1)
  assert again.model_dir(run) == failed_dir
  assert not run_record.is_finished(failed_dir) and not again.is_done(run)
  command = again.commands(run)[0]
  assert command[1:3] == ['-m', 'brokenelbo.train'] and f'--model_dir={failed_dir}' in command


@pytest.fixture(scope='module')
def checkpointed(tmp_path_factory):
  """A run with checkpoints 8, 10 and 12, and its final metrics."""
  model_dir = str(tmp_path_factory.mktemp('checkpointed') / 'run')
  results = _train_in_process(model_dir)
  assert checkpoints.checkpoint_steps(model_dir) == [12, 10, 8]
  return model_dir, results


def _damage(model_dir, how):
  data = tf.io.gfile.glob(os.path.join(model_dir, 'ckpt-12.data-*'))[0]
  if how == 'truncated':
    with open(data, 'r+b') as f:
      f.truncate(os.path.getsize(data) // 3)
  elif how == 'overwritten':
    with open(data, 'r+b') as f:
      f.seek(os.path.getsize(data) // 2)
      f.write(np.random.default_rng(0).bytes(4096))
  elif how == 'garbage_index':
    with open(os.path.join(model_dir, 'checkpoint'), 'wb') as f:
      f.write(np.random.default_rng(1).bytes(300))
  elif how == 'deleted_index':
    os.remove(os.path.join(model_dir, 'checkpoint'))


@pytest.mark.parametrize('how', ['truncated', 'overwritten'])
def test_a_damaged_checkpoint_is_set_aside_and_the_previous_one_used(checkpointed, tmp_path,
                                                                     how):
  original, want = checkpointed
  model_dir = str(tmp_path / 'run')
  shutil.copytree(original, model_dir)
  _damage(model_dir, how)
  damaged_bytes = {n: open(os.path.join(model_dir, n), 'rb').read()
                   for n in os.listdir(model_dir) if n.startswith('ckpt-12.')}
  if how == 'truncated':
    # A reader (evaluate) skips it and restores ckpt-10, moving nothing. (It reads only the
    # model's tensors, so 4 KB overwritten among the optimizer's may not concern it.)
    gin.clear_config()
    try:
      assert restore.restore_run(model_dir).step == 10
    finally:
      gin.clear_config()
    assert not os.path.exists(os.path.join(model_dir, checkpoints.DAMAGED_DIR))
  # Training moves it aside, resumes from ckpt-10 and ends where the intact run ended.
  got = _train_in_process(model_dir)
  for split in want:
    for key in ('rate', 'distortion', 'elbo'):
      np.testing.assert_allclose(got[split][key], want[split][key], atol=1e-4, rtol=0)
  damaged = os.path.join(model_dir, checkpoints.DAMAGED_DIR)
  assert {n: open(os.path.join(damaged, n), 'rb').read()
          for n in os.listdir(damaged)} == damaged_bytes  # Kept, byte for byte.
  assert checkpoints.checkpoint_steps(model_dir) == [12, 10, 8]
  assert [r['step'] for r in _strict_json_lines(os.path.join(model_dir, 'metrics.jsonl'))
          ] == [4, 4, 8, 8, 12, 12]


@pytest.mark.parametrize('how', ['garbage_index', 'deleted_index'])
def test_a_missing_or_garbled_index_is_rebuilt(checkpointed, tmp_path, how):
  original, want = checkpointed
  model_dir = str(tmp_path / 'run')
  shutil.copytree(original, model_dir)
  _damage(model_dir, how)
  metrics_before = open(os.path.join(model_dir, 'metrics.jsonl')).read()
  got = _train_in_process(model_dir)  # Resumes at step 12: nothing left to train.
  assert got == want
  assert open(os.path.join(model_dir, 'metrics.jsonl')).read() == metrics_before
  state = tf.train.get_checkpoint_state(model_dir)
  assert [os.path.basename(p) for p in state.all_model_checkpoint_paths] == [
      'ckpt-8', 'ckpt-10', 'ckpt-12']


def test_no_readable_checkpoint_is_an_error_not_a_silent_restart(checkpointed, tmp_path):
  original, _ = checkpointed
  model_dir = str(tmp_path / 'run')
  shutil.copytree(original, model_dir)
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'ckpt-*.data-*')):
    with open(path, 'r+b') as f:
      f.truncate(1000)
  with pytest.raises(errors.RunFailed, match=r'no checkpoint of .* reads back'):
    _train_in_process(model_dir)
  assert len(os.listdir(os.path.join(model_dir, checkpoints.DAMAGED_DIR))) == 6


def test_one_writer_per_run_directory(commands, checkpointed, tmp_path):
  original, _ = checkpointed
  model_dir = str(tmp_path / 'run')
  shutil.copytree(original, model_dir)
  before = {n: open(os.path.join(model_dir, n), 'rb').read() for n in os.listdir(model_dir)}
  # This process writes to the run; training and evaluate (which appends to metrics.jsonl)
  # in other processes are refused, naming it, and change nothing.
  with run_dir.RunLock(model_dir):
    results = _finish({
        'train': commands('train', *SMOKE, f'--model_dir={model_dir}',
                          *[f'--gin_bindings={b}' for b in CHECKPOINTED]),
        'evaluate': commands('evaluate', f'--model_dir={model_dir}',
                             '--gin_bindings=figure4_grids.examples = 0')})
    for name, (status, lines, stderr) in results.items():
      assert status == errors.EXIT_USER_ERROR, (name, stderr[-2000:])
      assert len(lines) == 1 and f'is in use by process {os.getpid()}' in lines[0], lines
  after = {n: open(os.path.join(model_dir, n), 'rb').read() for n in os.listdir(model_dir)}
  assert after == before


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path):
  model_dir = str(tmp_path / 'run')
  os.makedirs(model_dir)
  dead = subprocess.Popen([sys.executable, '-c', 'pass'])
  dead.wait()
  with open(os.path.join(model_dir, run_dir.LOCK_FILE), 'w') as f:
    f.write(f'{dead.pid}\n')
  _smoke_train(model_dir, ['train.summary_images = 0'])
  assert checkpoints.checkpoint_steps(model_dir) == [4]
  assert not os.path.exists(os.path.join(model_dir, run_dir.LOCK_FILE))


def _mount_tmpfs(path, options):
  """Mounts a tmpfs at `path`; skips the test with the reason where this user cannot."""
  os.makedirs(path, exist_ok=True)
  if shutil.which('mount') is None:
    pytest.skip('no mount command here')
  result = subprocess.run(['mount', '-t', 'tmpfs', '-o', options, 'tmpfs', path],
                          capture_output=True, text=True)
  if result.returncode:
    pytest.skip(f'cannot mount a tmpfs here ({result.stderr.strip() or "not root"})')


def test_a_full_disk_fails_cleanly_and_the_run_resumes_once_space_is_freed(commands, tmp_path):
  disk = str(tmp_path / 'disk')
  # Room for the run's config, metrics and TensorBoard files, not for one smoke checkpoint
  # of `---` (about 1 MB).
  _mount_tmpfs(disk, 'size=512k')
  try:
    model_dir = os.path.join(disk, 'run')
    args = [*SMOKE, f'--model_dir={model_dir}', '--gin_bindings=train.summary_images = 0']
    status, lines, stderr = _finish({'full': commands('train', *args)})['full']
    assert status == errors.EXIT_FAILED, stderr[-2000:]
    assert len(lines) == 1 and 'no space left on device' in lines[0], lines
    assert 'Traceback' not in stderr
    # No debris: no temporary checkpoint folder, no probe, no half-written file.
    leftover = [n for n in os.listdir(model_dir)
                if '_temp' in n or n.endswith('.tmp') or n.startswith(('.write_test', 'ckpt-'))]
    assert leftover == [], leftover
    subprocess.run(['mount', '-o', 'remount,size=200m', disk], check=True)
    _smoke_train(model_dir, ['train.summary_images = 0'])
    assert checkpoints.checkpoint_steps(model_dir) == [4]
    # Neither the failed command (its process lives on: `commands`) nor the run in this
    # process keeps a file of the run open: the disk unmounts.
    unmounted = subprocess.run(['umount', disk], capture_output=True, text=True)
    assert unmounted.returncode == 0, unmounted.stderr
  finally:
    if os.path.ismount(disk):  # Detached even while a file on it is open.
      subprocess.run(['umount', '--lazy', disk], check=False)


def test_unwritable_output_folders_fail_before_any_work(commands, tmp_path):
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a directory')
  read_only = str(tmp_path / 'read_only')
  cases = {'under_a_file': f'{a_file}/out', 'dev_null': '/dev/null'}
  try:
    _mount_tmpfs(read_only, 'size=1m,ro')
    cases['read_only_mount'] = os.path.join(read_only, 'out')
  except pytest.skip.Exception:
    pass  # The other cases still run.
  try:
    processes = {name: commands('toy', f'--output_dir={path}') for name, path in cases.items()}
    processes['train'] = commands('train', *SMOKE, f'--model_dir={a_file}/run')
    results = _finish(processes)
  finally:
    subprocess.run(['umount', read_only], check=False, capture_output=True)
  for name, (status, lines, stderr) in results.items():
    assert status == errors.EXIT_USER_ERROR, (name, stderr[-2000:])
    assert len(lines) == 1 and 'is not writable' in lines[0], (name, lines)
    assert 'trained' not in stderr, name  # Refused before computing anything.


def test_empty_or_non_finite_sweep_grids_are_refused(commands, tmp_path):
  cases = {'empty': ('--betas=', r'--betas is empty'),
           'nan': ('--betas=nan', r"betas must be finite numbers, got 'nan'"),
           'inf': ('--anneal_epochs=inf', r"anneal_epochs must be finite numbers")}
  results = _finish({name: commands('sweep', '--families=---', flag, f'--output_dir={tmp_path}')
                      for name, (flag, _) in cases.items()})
  for name, (_, message) in cases.items():
    status, lines, _ = results[name]
    assert status == errors.EXIT_USER_ERROR, name
    assert len(lines) == 1 and re.search(message, lines[0]), (name, lines)
  assert not os.path.exists(os.path.join(tmp_path, 'results.csv'))
