"""Reliability: kill -9 and resume, non-finite steps, bad input, nothing lost.

The kill test runs the real command line twice with the same seed: once straight through,
once killed (SIGKILL) after its second checkpoint and then resumed with the same command;
the resumed run must log every evaluation and every TensorBoard step exactly once, and its
final metrics must equal the uninterrupted run's to 1e-4 nats.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import pytest
import tensorflow as tf

from brokenelbo import data
from brokenelbo.data import mnist
from brokenelbo.models import vae as model_lib
from brokenelbo.training import losses
from brokenelbo.training import objectives
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_LOG = re.compile(r'^([IWEF]\d{4} |WARNING: All log messages before absl|'
                        r'To enable the following instructions)')
# 40 steps of batch 16 on 64 examples: evaluations at steps 20 and 40, checkpoints every 4
# steps, a progress line (and TensorBoard scalars) every 2 steps.
LONG_SMOKE = ['train.epochs = 10', 'train.eval_every_epochs = 5',
              'train.checkpoint_every_steps = 4', 'train.summary_images = 0']


def _train_command(model_dir, bindings=(), family='---'):
  command = [sys.executable, '-m', 'brokenelbo.train', f'--gin_file=configs/{family}.gin',
             '--gin_file=configs/smoke.gin', f'--model_dir={model_dir}']
  return command + [f'--gin_bindings={b}' for b in bindings]


def _metrics(model_dir):
  with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
    return [json.loads(line) for line in f]


def _scalar_steps(model_dir, tag):
  steps = []
  for path in tf.io.gfile.glob(os.path.join(model_dir, 'events.out.tfevents.*')):
    for record in tf.data.TFRecordDataset(path):
      event = tf.compat.v1.Event.FromString(record.numpy())
      steps += [event.step for v in event.summary.value if v.tag == tag]
  return sorted(steps)


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
  straight, killed = str(tmp_path / 'straight'), str(tmp_path / 'killed')
  subprocess.run(_train_command(straight, LONG_SMOKE), cwd=REPO, check=True,
                 capture_output=True)

  process = subprocess.Popen(_train_command(killed, LONG_SMOKE), cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + 300
  while not os.path.exists(os.path.join(killed, 'ckpt-8.index')):
    assert process.poll() is None, 'the run ended before it could be killed'
    assert time.time() < deadline
    time.sleep(0.05)
  process.send_signal(signal.SIGKILL)
  process.wait()
  interrupted_at = tf.train.load_variable(killed, 'step/.ATTRIBUTES/VARIABLE_VALUE')
  assert 8 <= interrupted_at < 40

  subprocess.run(_train_command(killed, LONG_SMOKE), cwd=REPO, check=True,
                 capture_output=True)

  want, got = _metrics(straight), _metrics(killed)
  assert [(r['step'], r['split']) for r in got] == [
      (20, 'train'), (20, 'test'), (40, 'train'), (40, 'test')]
  for w, g in zip(want, got):
    for key in ('rate', 'distortion', 'elbo'):
      np.testing.assert_allclose(g[key], w[key], atol=1e-4, rtol=0)
  # Every progress step logged once: no duplicates from before the kill, no gaps.
  assert _scalar_steps(killed, 'train/rate') == list(range(2, 41, 2))
  assert _scalar_steps(killed, 'eval/test/elbo') == [20, 40]


@gin.configurable
def poisoned_objective(rate, distortion, beta, good_calls=gin.REQUIRED):
  """beta-VAE whose loss becomes NaN after `good_calls` calls (a test double)."""
  calls = _CALLS.assign_add(1)
  loss = objectives.beta_vae(rate, distortion, beta)
  return tf.where(calls > good_calls, np.nan, loss)


_CALLS = tf.Variable(0)


def test_non_finite_steps_are_not_applied_and_training_stops(tmp_path):
  _CALLS.assign(0)
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'],
                ['train.epochs = 5', 'train.checkpoint_every_steps = 2',
                 'train.max_consecutive_bad_steps = 3', 'train.summary_images = 0',
                 'train.objective = @poisoned_objective',
                 'poisoned_objective.good_calls = 6'])
  model_dir = str(tmp_path)
  with pytest.raises(cli.RunFailed, match=r"stopped at step 9: 3 consecutive steps"):
    training.train(model_dir=model_dir)
  # The last good checkpoint is kept, and holds finite parameters.
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-6')
  reader = tf.train.load_checkpoint(model_dir)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if np.issubdtype(np.asarray(value).dtype, np.floating):
      assert np.all(np.isfinite(value)), name


def test_a_non_finite_step_changes_nothing():
  _CALLS.assign(0)
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['poisoned_objective.good_calls = 2'])
  trainer = training.Trainer(model_lib.VAE,
                             training.step_loss(losses.rate_distortion_loss,
                                                poisoned_objective),
                             tf.distribute.get_strategy(), total_steps=100,
                             steps_per_epoch=10, seed=0)
  images = data.static_mnist('test')[:64]
  iterator = trainer.distribute(data.train_dataset(images, 16, seed=0))
  trainer.train_steps(iterator, tf.constant(2))  # Two good steps.
  before = [v.numpy() for v in [*trainer.variables, *trainer.optimizer.variables]]
  _, good, bad_run, _ = trainer.train_steps(iterator, tf.constant(3))
  assert float(good) == 0 and int(bad_run) == 3
  after = [v.numpy() for v in [*trainer.variables, *trainer.optimizer.variables]]
  for b, a in zip(before, after):
    np.testing.assert_array_equal(a, b)


def test_same_seed_same_metrics(tmp_path):
  results = []
  for run in ('a', 'b'):
    gin.clear_config()
    cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['train.summary_images = 0'])
    results.append(training.train(model_dir=str(tmp_path / run)))
  assert results[0] == results[1]


def _cli_errors(cases):
  """Runs the train command with each `{name: args}` at once; returns `{name: (exit status,
  the program's own stderr lines)}`."""
  processes = {name: subprocess.Popen([sys.executable, '-m', 'brokenelbo.train', *args],
                                      cwd=REPO, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True)
               for name, args in cases.items()}
  results = {}
  for name, process in processes.items():
    _, stderr = process.communicate(timeout=300)
    lines = [l for l in stderr.splitlines() if l and not NATIVE_LOG.match(l)]
    results[name] = process.returncode, lines
  return results


def test_bad_input_gives_one_line_and_status_2(tmp_path):
  corrupt = tmp_path / 'corrupt.npz'
  with np.load(mnist.ASSET_PATH) as packed:
    arrays = {k: packed[k].copy() for k in packed.files}
  arrays['train'].flat[123] ^= 1
  np.savez(corrupt, **arrays)
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a directory')
  base = ['--gin_file=configs/---.gin', '--gin_file=configs/smoke.gin']
  cases = {
      'beta': (base + ['--gin_bindings=beta_schedule.beta = -0.5',
                       f'--model_dir={tmp_path / "r1"}'], r'beta must be >= 0'),
      'family': (['--gin_file=configs/-x-.gin', f'--model_dir={tmp_path / "r2"}'],
                 r'gin file not found: configs/-x-.gin'),
      'syntax': (base + ['--gin_bindings=train.epochs = = 2',
                         f'--model_dir={tmp_path / "r3"}'], r'invalid gin configuration'),
      'data': (base + [f'--gin_bindings=static_mnist.path = "{corrupt}"',
                       f'--model_dir={tmp_path / "r4"}'], r'SHA-256|checksum|digest'),
      'unwritable': (base + [f'--model_dir={a_file}/run'], r'is not writable'),
  }
  results = _cli_errors({name: args for name, (args, _) in cases.items()})
  for name, (_, message) in cases.items():
    status, lines = results[name]
    assert status == 2, (name, lines)
    assert len(lines) == 1 and lines[0].startswith('error: '), (name, lines)
    assert re.search(message, lines[0]), (name, lines)


def test_model_dir_protection(tmp_path):
  run_dir = str(tmp_path / 'run')
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['train.summary_images = 0'])
  training.train(model_dir=run_dir)
  first = _metrics(run_dir)
  # Another config in the same directory is refused, and nothing there changes.
  gin.clear_config()
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'],
                ['train.summary_images = 0', 'beta_schedule.beta = 0.5'])
  with pytest.raises(cli.UserError, match='holds a run with a different config'):
    training.train(model_dir=run_dir)
  assert _metrics(run_dir) == first
  # A non-empty directory that is not a run is refused; with overwrite, only a run's
  # files are removed, the user's own file stays.
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'notes.txt').write_text('mine')
  with pytest.raises(cli.UserError, match='is not empty and holds no run'):
    training.train(model_dir=str(other))
  training.train(model_dir=run_dir, overwrite=True)
  training.train(model_dir=str(other), overwrite=True)
  assert (other / 'notes.txt').read_text() == 'mine'
  assert [r['beta'] for r in _metrics(run_dir)] == [0.5, 0.5]


def test_files_cut_by_a_crash_are_tolerated(tmp_path):
  run_dir = str(tmp_path)
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'],
                ['train.summary_images = 0', 'train.epochs = 2',
                 'train.eval_every_epochs = 1'])
  want = training.train(model_dir=run_dir)
  # Simulate a crash after the checkpoint at step 4: a half-written metrics line and a
  # half-written TensorBoard record, and the step-8 checkpoint gone.
  for name in tf.io.gfile.glob(os.path.join(run_dir, 'ckpt-8*')):
    tf.io.gfile.remove(name)
  with open(os.path.join(run_dir, 'checkpoint'), 'w') as f:
    f.write('model_checkpoint_path: "ckpt-4"\nall_model_checkpoint_paths: "ckpt-4"\n')
  with open(os.path.join(run_dir, 'metrics.jsonl'), 'a') as f:
    f.write('{"step": 8, "split": "tr')
  events = tf.io.gfile.glob(os.path.join(run_dir, 'events.out.tfevents.*'))[0]
  with open(events, 'ab') as f:
    f.write(b'\x10\x00\x00\x00\x00')
  got = training.train(model_dir=run_dir)
  assert [r['step'] for r in _metrics(run_dir)] == [4, 4, 8, 8]
  for split in want:
    for key in ('rate', 'distortion', 'elbo'):
      np.testing.assert_allclose(got[split][key], want[split][key], atol=1e-4)
