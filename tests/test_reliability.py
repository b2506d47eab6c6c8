"""Reliability: interrupted and resumed runs, non-finite steps, bad input, nothing lost.

The kill-and-resume test runs the real command line with the same seed: once straight
through, and once interrupted at 2 random moments in a row, first by SIGKILL, then by
SIGTERM (whose handler only asks for a stop at the next step boundary, wherever it lands),
resumed each time with the same command, then run to its end. The resumed run must log
every evaluation and every TensorBoard step exactly once, and its final metrics must equal
the uninterrupted run's to 1e-4 nats. Run it with `-s` to see the exit statuses, the steps
reached and the largest difference.
"""

import functools
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
from brokenelbo import errors
from brokenelbo.data import mnist
from brokenelbo.models import vae as model_lib
from brokenelbo.training import losses
from brokenelbo.training import objectives
from brokenelbo.training import run_dir
from brokenelbo.training import run_record
from brokenelbo.training import step as step_lib
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NATIVE_LOG = re.compile(r'^([IWEF]\d{4} |WARNING: All log messages before absl|'
                        r'To enable the following instructions)')
# 80 steps of batch 16 on 64 examples: evaluations every 20 steps, a checkpoint, a progress
# line and TensorBoard scalars every 2 (so that a kill often lands in a save).
FAULT_RUN = ['train.epochs = 20', 'train.eval_every_epochs = 5',
             'train.checkpoint_every_steps = 2', 'train.summary_images = 0']
FAULT_STEPS = 80
EVAL_STEPS = (20, 40, 60, 80)
# The signals of the interruptions, in order.
INTERRUPTIONS = (signal.SIGKILL, signal.SIGTERM)


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


PROGRESS = re.compile(r'^I(\d\d\d\d) (\d\d):(\d\d):(\d\d\.\d+) .* step (\d+)/(\d+) ', re.M)


def _progress(log_path):
  """[(seconds of the day, step)] of the progress lines in a run's stderr so far."""
  with open(log_path) as f:
    return [(int(h) * 3600 + int(m) * 60 + float(sec), int(step))
            for _, h, m, sec, step, _ in PROGRESS.findall(f.read())]


def _interrupt_and_resume(model_dir, signals, seed):
  """Runs the command once for each signal of `signals`, sent at a random moment, then once
  to the end.

  Each moment is uniform over the 4 steps' time that follows a progress line of the
  process (so training has begun, and every process makes progress): it falls in a step,
  an evaluation or a checkpoint save. The time of a step is measured in the first process,
  between its first two progress lines, whose second is then the one the moment follows;
  in later processes it follows the first. Returns (exit statuses, the checkpoint step
  after each interruption).
  """
  rng = np.random.default_rng(seed)
  statuses, steps = [], []
  seconds_per_step = None
  for i, (sig, fraction) in enumerate(zip(signals, rng.uniform(0., 4., size=len(signals)))):
    log = f'{model_dir}.{i}.log'
    with open(log, 'w') as stderr:
      process = subprocess.Popen(_train_command(model_dir, FAULT_RUN), cwd=REPO,
                                 stdout=subprocess.DEVNULL, stderr=stderr)
    deadline = time.time() + 300
    while len(_progress(log)) < (1 if seconds_per_step else 2):
      assert process.poll() is None and time.time() < deadline, open(log).read()[-2000:]
      time.sleep(0.01)
    if seconds_per_step is None:
      (t0, s0), (t1, s1) = _progress(log)[:2]
      seconds_per_step = (t1 - t0) / (s1 - s0)
    time.sleep(fraction * seconds_per_step)
    process.send_signal(sig)
    statuses.append(process.wait(timeout=300))
    steps.append(int(tf.train.load_variable(model_dir, 'step/.ATTRIBUTES/VARIABLE_VALUE'))
                 if tf.train.latest_checkpoint(model_dir) else 0)
    assert not run_record.is_finished(model_dir), f'interrupted, yet finished: {sig}'
  subprocess.run(_train_command(model_dir, FAULT_RUN), cwd=REPO, check=True,
                 capture_output=True)
  assert run_record.read_run_record(model_dir)['step'] == FAULT_STEPS
  return statuses, steps


def _check_equals_uninterrupted(model_dir, uninterrupted_dir):
  want, got = _metrics(uninterrupted_dir), _metrics(model_dir)
  assert [(r['step'], r['split']) for r in got] == [
      (step, split) for step in EVAL_STEPS for split in ('train', 'test')]
  for w, g in zip(want, got):
    for key in ('rate', 'distortion', 'elbo'):
      np.testing.assert_allclose(g[key], w[key], atol=1e-4, rtol=0)
  # Every TensorBoard step once: nothing duplicated from before an interruption.
  train_steps = _scalar_steps(model_dir, 'train/rate')
  assert train_steps == sorted(set(train_steps)), train_steps
  assert _scalar_steps(model_dir, 'eval/test/elbo') == list(EVAL_STEPS)
  return train_steps, max(abs(g[k] - w[k]) for w, g in zip(want, got)
                          for k in ('rate', 'distortion', 'elbo'))


# A class of its own, so that pytest-xdist (`--dist loadscope`) can give the module's other
# tests to the other worker meanwhile; marked `first`, which `conftest.py` runs before
# everything else, so that it does not finish the suite alone.
@pytest.mark.first
class TestKillAndResume:

  def test_sigkill_and_sigterm_at_random_moments_then_resume_matches_uninterrupted_run(
      self, tmp_path):
    # The run straight through, in the background meanwhile.
    reference_dir, reference_log = str(tmp_path / 'uninterrupted'), tmp_path / 'reference.log'
    with open(reference_log, 'w') as stderr:
      reference = subprocess.Popen(_train_command(reference_dir, FAULT_RUN), cwd=REPO,
                                   stdout=subprocess.DEVNULL, stderr=stderr)
    try:
      model_dir = str(tmp_path / 'interrupted')
      statuses, steps = _interrupt_and_resume(model_dir, INTERRUPTIONS, seed=0)
    finally:
      try:
        reference_status = reference.wait(timeout=600)
      finally:
        if reference.poll() is None:
          reference.kill()
    assert reference_status == 0, reference_log.read_text()[-2000:]
    # The run straight through the command line: its configs and its record.
    for name in ('config.gin', 'operative_config.gin', run_record.RUN_RECORD):
      assert os.path.exists(os.path.join(reference_dir, name)), name
    assert run_record.read_run_record(reference_dir)['step'] == FAULT_STEPS
    names = [signal.Signals(s).name for s in INTERRUPTIONS]
    print(f'interruptions {names}: exit statuses {statuses}, checkpoint steps after each '
          f'{steps}')
    # SIGKILL ends the process at once; SIGTERM stops it at a step boundary with a
    # checkpoint of the step reached, so that it went further than the process before it.
    assert statuses == [-signal.SIGKILL if s == signal.SIGKILL else errors.EXIT_PREEMPTED
                        for s in INTERRUPTIONS]
    assert steps == sorted(steps) and steps[-1] < FAULT_STEPS, steps
    stops = [step for step, sig in zip(steps, INTERRUPTIONS) if sig == signal.SIGTERM]
    for i, sig in enumerate(INTERRUPTIONS):
      if sig == signal.SIGTERM:
        assert steps[i] > (steps[i - 1] if i else 0), steps
    train_steps, difference = _check_equals_uninterrupted(model_dir, reference_dir)
    # Chunks end on the logging grid whatever the step a run resumed from, and where a
    # SIGTERM stopped it.
    assert train_steps == sorted({*range(2, FAULT_STEPS + 1, 2), *stops}), train_steps
    print(f'largest metric difference to the uninterrupted run {difference:.2e}')


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
                 'rate_distortion_loss.objective = @poisoned_objective',
                 'poisoned_objective.good_calls = 6'])
  model_dir = str(tmp_path)
  with pytest.raises(errors.RunFailed, match=r"stopped at step 9: 3 consecutive steps"):
    training.train(model_dir=model_dir)
  # The last good checkpoint is kept, and holds finite parameters; the run is not finished.
  assert tf.train.latest_checkpoint(model_dir).endswith('ckpt-6')
  assert not os.path.exists(os.path.join(model_dir, run_record.RUN_RECORD))
  reader = tf.train.load_checkpoint(model_dir)
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    if np.issubdtype(np.asarray(value).dtype, np.floating):
      assert np.all(np.isfinite(value)), name


def test_a_non_finite_step_changes_nothing():
  _CALLS.assign(0)
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['poisoned_objective.good_calls = 2'])
  trainer = step_lib.Trainer(model_lib.VAE,
                             functools.partial(losses.rate_distortion_loss,
                                               objective=poisoned_objective),
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


def test_bad_input_gives_one_line_and_status_2(tmp_path, in_one_process):
  corrupt = tmp_path / 'corrupt.npz'
  with np.load(mnist.ASSET_PATH) as packed:
    arrays = {k: packed[k].copy() for k in packed.files}
  arrays['train'].flat[123] ^= 1
  np.savez(corrupt, **arrays)
  a_file = tmp_path / 'a_file'
  a_file.write_text('not a directory')
  other_run = tmp_path / 'other_run'
  other_run.mkdir()
  run_files = {'config.gin': 'train.seed = 5\n', 'metrics.jsonl': '{"step": 4}\n'}
  for name, text in run_files.items():
    (other_run / name).write_text(text)
  base = ['--gin_file=configs/---.gin', '--gin_file=configs/smoke.gin']
  cases = {
      'beta': (base + ['--gin_bindings=beta_schedule.beta = -0.5',
                       f'--model_dir={tmp_path / "r1"}'],
               r'beta_schedule\.beta = -0\.5: must be a finite number >= 0'),
      'family': (['--gin_file=configs/-x-.gin', f'--model_dir={tmp_path / "r2"}'],
                 r'gin file not found: configs/-x-.gin'),
      'syntax': (base + ['--gin_bindings=train.epochs = = 2',
                         f'--model_dir={tmp_path / "r3"}'], r'invalid gin configuration'),
      'data': (base + [f'--gin_bindings=static_mnist.path = "{corrupt}"',
                       f'--model_dir={tmp_path / "r4"}'], r'SHA-256|checksum|digest'),
      'unwritable': (base + [f'--model_dir={a_file}/run'], r'is not writable'),
      'unknown': (base + ['--gin_bindings=train.not_a_param = 1',
                          f'--model_dir={tmp_path / "r5"}'], r'not_a_param'),
      # A folder holding a run of another config: refused, and left as it was.
      'other_run': (base + ['--gin_bindings=train.seed = 1', f'--model_dir={other_run}'],
                    r'holds a run with a different config'),
  }
  outcomes, _ = in_one_process('train', [args for args, _ in cases.values()])
  for (name, (_, message)), (status, lines) in zip(cases.items(), outcomes):
    assert status == 2, (name, lines)
    assert len(lines) == 1 and lines[0].startswith('error: '), (name, lines)
    assert re.search(message, lines[0]), (name, lines)
  assert not any((tmp_path / f'r{i}').exists() for i in range(1, 6))
  assert {p.name: p.read_text() for p in other_run.iterdir()} == run_files


def test_model_dir_protection(tmp_path):
  run_dir = str(tmp_path / 'run')
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['train.summary_images = 0'])
  training.train(model_dir=run_dir)
  first = _metrics(run_dir)
  # Another config in the same directory is refused, and nothing there changes.
  gin.clear_config()
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'],
                ['train.summary_images = 0', 'beta_schedule.beta = 0.5'])
  with pytest.raises(errors.UserError, match='holds a run with a different config'):
    training.train(model_dir=run_dir)
  assert _metrics(run_dir) == first
  # A non-empty directory that is not a run is refused; with overwrite, only a run's
  # files are removed, the user's own file stays.
  other = tmp_path / 'other'
  other.mkdir()
  (other / 'notes.txt').write_text('mine')
  with pytest.raises(errors.UserError, match='is not empty and holds no run'):
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


def test_the_metrics_log_keeps_resumed_records_and_names_a_foreign_line(tmp_path):
  path = tmp_path / 'metrics.jsonl'
  # A line cut by a crash is skipped, records past the resumed step are dropped.
  path.write_text('{"step": 1, "loss": 3.0}\n{"step": 2, "lo\n{"step": 9}\n')
  log = run_dir.MetricsLog(str(path), resume_step=5)
  assert log.records == [{'step': 1, 'loss': 3.0}]
  assert path.read_text() == '{"step": 1, "loss": 3.0}\n'
  for line in ('[3]', '{"loss": 1.0}', '{"step": "4"}', '{"step": true}'):
    path.write_text('{"step": 1}\n' + line + '\n')
    with pytest.raises(errors.UserError, match=rf'^{re.escape(str(path))}: line 2 is not a '
                       r'metrics record \(no integer "step"\); move the file away'):
      run_dir.MetricsLog(str(path), resume_step=5)
    assert path.read_text() == '{"step": 1}\n' + line + '\n'  # Untouched.
