"""Tests of `python -m brokenelbo.rd_curve`, its record, its CSV columns and its figure.

One `---` run at smoke sizes is trained in this process and copied into a sweep's layout;
the command records its decoder's AIS curve at tiny counts (2 examples of the first 20 of
the test split, 2 chains and 1 pilot, 5 distributions, 2 leapfrog steps, beta 1 alone,
NLL_K at K = 1 and 10).
The record must hold the run's step and the suite's numbers and reach TensorBoard, an
existing record must be kept unless `--overwrite` (refused before the run is restored), a
bad binding must be one line with exit status 2, the sweep's CSV must carry the record's
`ais_nll`, and `plot` must draw the record's numbers. The commands run as `python -m`
would run them, through one server process per command (conftest's `commands`).
"""

import csv
import json
import os
import shutil

import gin
import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.evaluation import rd_curve
from brokenelbo.experiments import sweep
from brokenelbo.training import run_record
from brokenelbo.training import trainer as training
from brokenelbo.utils import cli
from brokenelbo.visualize import rd_curves
from brokenelbo.visualize import rd_plane

# The curve at the smallest counts that run every part of it.
TINY = ['record_rd_curve.max_examples = 20', 'rd_curve_suite.num_examples = 2',
        'rd_curve_suite.num_steps = 5', 'rd_curve_suite.num_chains = 2',
        'rd_curve_suite.num_pilot_chains = 1', 'rd_curve_suite.num_leapfrog_steps = 2',
        'rd_curve_suite.betas = (1.,)', 'rd_curve_suite.importance_samples = (1, 10)']
TINY_FLAGS = [f'--gin_bindings={binding}' for binding in TINY]
RUN = os.path.join('---', 'beta=1_anneal=0_seed=0')


def _errors(stderr):
  return [line for line in stderr.splitlines() if line.startswith('error:')]


def _read_csv(path):
  with open(path, newline='') as f:
    return list(csv.DictReader(f))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """A finished `---` smoke run (4 steps), trained in this process, in a sweep's layout."""
  output_dir = tmp_path_factory.mktemp('sweep')
  gin.clear_config()
  cli.parse_gin(['configs/---.gin', 'configs/smoke.gin'], ['train.summary_images = 0'])
  try:
    training.train(model_dir=str(output_dir / RUN))
  finally:
    gin.clear_config()
  return output_dir


# A record of the train split, there before the command records the test split's.
TRAIN_RECORD = dict(step=1, split='train', ais_nll=123.)


@pytest.fixture(scope='module')
def recorded(commands, trained):
  """The sweep of `trained` after `rd_curve` recorded its run's curve of the test split
  beside a record of the train split, and the command's result."""
  run_record.write_rd_curve(str(trained / RUN), 'train', TRAIN_RECORD)
  result = commands('rd_curve', f'--model_dir={trained / RUN}', *TINY_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  return trained, result


def test_the_command_records_the_curve_and_its_scalars(recorded):
  output_dir, result = recorded
  model_dir = str(output_dir / RUN)
  records = run_record.read_rd_curves(model_dir)
  assert records['train'] == TRAIN_RECORD  # Another split's record is kept.
  record = records['test']
  assert json.loads(result.stdout.splitlines()[-1]) == record
  step = run_record.read_run_record(model_dir)['step']
  assert (record['step'], record['split']) == (step, 'test')
  # 2 examples spread through the first 20: every 10th.
  assert (record['num_examples'], record['ais_examples'], record['ais_stride']) == (20, 2, 10)
  assert (record['ais_num_steps'], record['ais_num_chains']) == (5, 2)
  # R_1 + D_1 = -log Z_1 = -log p(x), per example and so in the mean.
  assert record['ais_nll'] == pytest.approx(-record['ais_log_z_b1'], rel=1e-12)
  assert record['ais_rate_b1'] + record['ais_distortion_b1'] == pytest.approx(
      record['ais_nll'], rel=1e-9)
  assert np.isfinite([record['encoder_rate'], record['encoder_distortion']]).all()
  # The bound, with the encoder's draws: NLL_1 is its R + D on the same images.
  assert record['nll_k1'] == pytest.approx(
      record['encoder_rate'] + record['encoder_distortion'], rel=1e-5)
  assert record['nll_k10_minus_ais'] == pytest.approx(record['nll_k10'] - record['ais_nll'])
  # The evaluation's record is another file, untouched.
  assert not os.path.exists(os.path.join(model_dir, run_record.EVALUATION_RECORD))
  accumulator = event_accumulator.EventAccumulator(model_dir)
  accumulator.Reload()
  for name in ('ais_nll', 'ais_rate_b1', 'encoder_distortion', 'ais_examples'):
    tensor = accumulator.Tensors(f'rd_curve/test/{name}')[-1]
    assert tensor.step == step
    assert float(tf.make_ndarray(tensor.tensor_proto)) == pytest.approx(record[name], rel=1e-6)


def test_a_record_is_replaced_only_with_overwrite(commands, recorded, tmp_path):
  model_dir = tmp_path / 'run'
  # Without its checkpoints the run cannot be restored: the refusal must come before that.
  shutil.copytree(recorded[0] / RUN, model_dir, ignore=shutil.ignore_patterns('ckpt-*'))
  path = model_dir / run_record.RD_CURVE_RECORD
  before = path.read_bytes()
  step = json.loads(before)['test']['step']
  result = commands('rd_curve', f'--model_dir={model_dir}', *TINY_FLAGS)
  assert result.returncode == errors.EXIT_USER_ERROR
  assert _errors(result.stderr) == [
      f"error: {path} holds the test split's curve (step {step}); pass --overwrite to replace "
      'it']
  # With --overwrite it goes on, to the restore.
  result = commands('rd_curve', f'--model_dir={model_dir}', *TINY_FLAGS, '--overwrite')
  assert result.returncode == errors.EXIT_USER_ERROR
  assert _errors(result.stderr) == [f'error: {model_dir} holds no checkpoint yet']
  assert path.read_bytes() == before
  # The library refuses as the command does, before it touches the run.
  with pytest.raises(errors.UserError, match='pass --overwrite to replace it'):
    rd_curve.record_rd_curve(None, str(model_dir), 'test')
  assert path.read_bytes() == before


@pytest.mark.parametrize('args, line', [
    (['--gin_bindings=rd_curve_suite.num_chains = 1'],
     'error: rd_curve_suite.num_chains = 1: must be an integer >= 2'),
    (['--gin_bindings=record_rd_curve.max_examples = 0'],
     'error: record_rd_curve.max_examples = 0: must be '),
    (['--gin_bindings=rd_curve_suite.no_such_count = 3'],
     'error: invalid gin configuration in --gin_bindings: '),
    (['--gin_file=no/such.gin'], 'error: gin file not found: no/such.gin'),
    (['extra'], 'error: unexpected arguments: extra'),
])
def test_bad_input_is_one_line_and_exit_2(commands, recorded, args, line):
  model_dir = recorded[0] / RUN
  before = (model_dir / run_record.RD_CURVE_RECORD).read_bytes()
  # --overwrite: past the check of the existing record, to the input's.
  result = commands('rd_curve', f'--model_dir={model_dir}', '--overwrite', *args)
  assert result.returncode == errors.EXIT_USER_ERROR, result.stderr[-3000:]
  found = _errors(result.stderr)
  assert len(found) == 1 and found[0].startswith(line), found
  assert (model_dir / run_record.RD_CURVE_RECORD).read_bytes() == before


def test_write_rd_curve_keeps_the_other_splits(tmp_path):
  run_record.write_rd_curve(str(tmp_path), 'test', dict(step=3, split='test', ais_nll=90.))
  run_record.write_rd_curve(str(tmp_path), 'train', dict(step=4, split='train', ais_nll=80.))
  run_record.write_rd_curve(str(tmp_path), 'test', dict(step=5, split='test', ais_nll=85.))
  curves = run_record.read_rd_curves(str(tmp_path))
  assert {split: r['step'] for split, r in curves.items()} == {'test': 5, 'train': 4}
  (tmp_path / run_record.RD_CURVE_RECORD).write_text('{"test": {"step": 1}}')
  with pytest.raises(errors.UserError, match=r"test has no key 'split'"):
    run_record.read_rd_curves(str(tmp_path))


def test_the_csv_gets_the_ais_nll_of_the_final_step(recorded, tmp_path):
  output_dir = recorded[0]
  record = run_record.read_rd_curves(str(output_dir / RUN))['test']
  results = tmp_path / 'results.csv'
  assert sweep.write_results(str(output_dir), str(results)) == 1
  (row,) = _read_csv(results)
  assert list(row) == list(sweep.columns([]))
  assert list(row)[-4:] == ['run_dir', 'ais_nll', 'ais_nll_stderr', 'ais_examples']
  assert row['ais_nll'] == f"{record['ais_nll']:.4f}"
  assert row['ais_nll_stderr'] == f"{record['ais_nll_stderr']:.4f}"
  assert row['ais_examples'] == '2'
  # A curve of another step than the run's last is not the run's: empty cells.
  copy = tmp_path / 'sweep'
  shutil.copytree(output_dir / RUN, copy / RUN, ignore=shutil.ignore_patterns('ckpt-*'))
  run_record.write_rd_curve(str(copy / RUN), 'test', dict(record, step=record['step'] - 1))
  sweep.write_results(str(copy), str(results))
  (row,) = _read_csv(results)
  assert (row['ais_nll'], row['ais_nll_stderr'], row['ais_examples']) == ('', '', '')


def _lines(ax):
  return {line.get_label(): line for line in ax.lines}


def test_the_figure_draws_each_runs_recorded_curve(recorded, tmp_path):
  output_dir = tmp_path / 'sweep'
  shutil.copytree(recorded[0] / RUN, output_dir / RUN, ignore=shutil.ignore_patterns('ckpt-*'))
  record = run_record.read_rd_curves(str(output_dir / RUN))['test']
  # Three betas, out of order: drawn in the order of beta, with their standard errors.
  for beta, rate, distortion in (('2', 9., 12.), ('0.5', 1., 30.), ('1', 4., 20.)):
    record.update({f'ais_rate_b{beta}': rate, f'ais_rate_b{beta}_stderr': .5,
                   f'ais_distortion_b{beta}': distortion,
                   f'ais_distortion_b{beta}_stderr': .25})
  record.update(encoder_rate=5., encoder_distortion=22.)
  run_record.write_rd_curve(str(output_dir / RUN), 'test', record)
  results = tmp_path / 'results.csv'
  sweep.write_results(str(output_dir), str(results))
  runs = rd_plane.read_results(str(results))
  curves = rd_curves.curve_records(runs, 'test')
  assert [run.run_dir for run, _ in curves] == [str(output_dir / RUN)]
  figure = rd_curves.rd_curves_figure(runs, curves, 'static_mnist, test split')
  (ax,) = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
  assert ax.get_title().startswith('---: ')
  assert (ax.get_xlabel(), ax.get_ylabel()) == ('rate R (nats)', 'distortion D (nats)')
  lines = _lines(ax)
  np.testing.assert_array_equal(lines["beta' 1"].get_xydata(),
                                [(1., 30.), (4., 20.), (9., 12.)])
  np.testing.assert_array_equal(lines["beta' 1, beta = 1/beta'"].get_xydata(), [(4., 20.)])
  np.testing.assert_array_equal(lines["beta' 1, encoder"].get_xydata(), [(5., 22.)])
  # The error bars: each point's rate +- 0.5 and distortion +- 0.25.
  segments = np.concatenate([c.get_segments() for c in ax.collections])
  assert len(segments) == 6
  assert {(s[0, 0], s[1, 0], s[0, 1]) for s in segments if s[0, 1] == s[1, 1]} == {
      (.5, 1.5, 30.), (3.5, 4.5, 20.), (8.5, 9.5, 12.)}
  assert {(s[0, 1], s[1, 1], s[0, 0]) for s in segments if s[0, 0] == s[1, 0]} == {
      (29.75, 30.25, 1.), (19.75, 20.25, 4.), (11.75, 12.25, 9.)}
  # The sweep's frontier: its one run's whole-split R and D, to the right edge.
  (run,) = runs
  frontier = lines['Pareto frontier'].get_xydata()
  np.testing.assert_allclose(frontier[0], (run.rate, run.distortion))


def test_a_curve_record_that_lacks_a_drawn_number_is_named():
  record = {'step': 4, 'split': 'test', 'ais_rate_b1e-05': 3., 'ais_rate_b1e-05_stderr': .1,
            'ais_distortion_b1e-05_stderr': .1, 'encoder_rate': 1., 'encoder_distortion': 2.}
  with pytest.raises(errors.UserError, match=r"^rate-distortion curve record r\.json: the top "
                     r"level has no key 'ais_distortion_b1e-05'$"):
    rd_curves.curve_of(record, 'r.json')
  with pytest.raises(errors.UserError, match='no key ais_rate_b<beta>'):
    rd_curves.curve_of({'ais_rate_bx': 1.}, 'r.json')
  curve = rd_curves.curve_of(dict(record, **{'ais_distortion_b1e-05': None}), 'r.json')
  assert curve['beta'] == [1e-5] and np.isnan(curve['distortion']).all()


def test_plot_writes_the_figure_or_says_why_not(commands, recorded, tmp_path):
  output_dir = recorded[0]
  results = tmp_path / 'results.csv'
  sweep.write_results(str(output_dir), str(results))
  figures = tmp_path / 'figures'
  args = [f'--results={results}', f'--output_dir={figures}']
  result = commands('plot', *args, '--pdf')
  assert result.returncode == 0, result.stderr[-3000:]
  assert {'rd_curves.png', 'rd_curves.pdf'} <= set(os.listdir(figures))
  assert 'no rd_curves' not in result.stderr
  # Not replaced unasked, like every figure.
  before = (figures / 'rd_curves.png').read_bytes()
  result = commands('plot', *args)
  assert result.returncode == errors.EXIT_USER_ERROR and len(_errors(result.stderr)) == 1
  assert (figures / 'rd_curves.png').read_bytes() == before
  # A sweep without recorded curves: the other figures, and a note.
  os.rename(output_dir / RUN / run_record.RD_CURVE_RECORD, tmp_path / 'kept.json')
  try:
    result = commands('plot', *args[:1], f'--output_dir={tmp_path / "without"}')
  finally:
    os.rename(tmp_path / 'kept.json', output_dir / RUN / run_record.RD_CURVE_RECORD)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'rd_curves.png' not in os.listdir(tmp_path / 'without')
  notes = [line for line in result.stderr.splitlines() if line.startswith('note: no rd_curves')]
  assert len(notes) == 1, result.stderr


def test_the_table_script_prints_the_gap_and_likelihoods(recorded, tmp_path, capsys,
                                                         load_script):
  output_dir = tmp_path / 'sweep'
  shutil.copytree(recorded[0] / RUN, output_dir / RUN, ignore=shutil.ignore_patterns('ckpt-*'))
  record = run_record.read_rd_curves(str(output_dir / RUN))['test']
  record = {k: v for k, v in record.items() if not k.startswith('ais_rate_b')}
  # Points of the curve R = 100 / D (R + b D is least at D = 10 / sqrt(b)); the encoder at
  # D = 12 lies 10 - 100 / 12 = 1.67 nats of rate above it, which the points bracket by
  # the chord (1.41) and the least supporting line (1.86, beta 0.5).
  for beta in (0.5, 1, 2):
    distortion = 10. / np.sqrt(beta)
    record.update({f'ais_rate_b{beta:g}': 100. / distortion, f'ais_rate_b{beta:g}_stderr': .1,
                   f'ais_distortion_b{beta:g}': distortion,
                   f'ais_distortion_b{beta:g}_stderr': .1})
  record.update(encoder_rate=10., encoder_distortion=12., ais_nll=23.5, ais_nll_stderr=2.,
                nll_k1=30., nll_k100=25., nll_k5000=24., nll_k5000_minus_ais=.5,
                nll_k5000_minus_ais_stderr=.1)
  run_record.write_rd_curve(str(output_dir / RUN), 'test', record)
  results = tmp_path / 'results.csv'
  sweep.write_results(str(output_dir), str(results))
  load_script('rd_curve_table').main([str(results)])
  lines = capsys.readouterr().out.splitlines()
  assert lines[0].startswith("| family | beta' | encoder R / D |")
  assert lines[1].count('|---') == lines[0].count('|') - 1
  assert lines[2] == ('| `---` | 1 | 10.00 / 12.00 | 10.00 / 10.00 | 1.41 to 1.86 | '
                      '23.50 ± 2.00 | 30.00 | 25.00 | 24.00 | 0.50 ± 0.10 |')
  assert lines[4] == f"1 runs; examples per run: {record['ais_examples']}."
