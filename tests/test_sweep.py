"""Tests of `brokenelbo.sweep` and `brokenelbo.evaluate` through their command lines.

One real smoke sweep (family `---`, each run's information suite at tiny counts) is shared
by the tests. It is made in two invocations, as a user extends a sweep: beta 1 alone, which
must train the run and then measure its suite, then betas 0.5 and 1, which must run only
the new run. Its CSV must hold exactly the runs' final metrics and their suites, a rerun
must skip both runs, a run without its suite must get it on the next invocation without
training again (and keep its row while its evaluation fails), a run whose record is lost
must get it back from its last checkpoint without a training step, and `evaluate` must
reproduce a run's own final evaluation exactly with one z sample. The commands run as
`python -m` would run them, through one server process per command (conftest's `commands`).
"""

import csv
import glob
import json
import os
import shutil
import tempfile

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.plugins.hparams import metadata as hparams_metadata
import tensorflow as tf

from brokenelbo import errors
from brokenelbo.experiments import grid
from brokenelbo.experiments import sweep
from brokenelbo.training import restore
from brokenelbo.training import run_record
from brokenelbo.visualize import grids
from brokenelbo.visualize import hparams
from brokenelbo.visualize import information
from brokenelbo.visualize import rd_plane

# One of the longest modules: it starts before the short ones (conftest.py).
pytestmark = pytest.mark.first

# The suite on the first 20 test examples, in one batch (so that NLL_1 is the evaluation's
# -ELBO: same examples, same draws), K = 1 and 5, E and G from 4 generated pairs.
EVALUATE_BINDINGS = ['evaluate_run.max_examples = 20', 'evaluate_run.batch_size = 20',
                     'information_suite.batch_size = 20',
                     'information_suite.num_samples = (1, 5)',
                     'information_suite.generative_examples = 4']
SWEEP_FLAGS = ['--families=---', '--betas=0.5,1', '--gin_file=configs/smoke.gin',
               '--parallel=2', *[f'--evaluate_bindings={b}' for b in EVALUATE_BINDINGS]]
# The first invocation: beta 1 alone.
FIRST_FLAGS = ['--betas=1' if f.startswith('--betas=') else f for f in SWEEP_FLAGS]
FIRST_RUN = os.path.join('---', 'beta=1_anneal=0_seed=0')


def _errors(stderr):
  return [line for line in stderr.splitlines() if line.startswith('error:')]


def _final_records(run_dir):
  """{split: record} of the run's last evaluation of each split in its metrics.jsonl."""
  with open(os.path.join(run_dir, 'metrics.jsonl')) as f:
    return {r['split']: r for r in map(json.loads, f)}


@pytest.fixture(scope='module')
def first_sweep(commands):
  """The sweep's first invocation (beta 1 alone): its output folder and its result."""
  root = tempfile.mkdtemp()
  output_dir = os.path.join(root, 'sweep')
  result = commands('sweep', f'--output_dir={output_dir}', *FIRST_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  yield output_dir, result
  shutil.rmtree(root)


def _state(path):
  """(size, mtime) of a file."""
  return os.stat(path).st_size, os.stat(path).st_mtime_ns


@pytest.fixture(scope='module')
def extended(commands, first_sweep):
  """The second invocation, with betas 0.5 and 1: its result, and the first run's record
  and log as they were before it."""
  output_dir, _ = first_sweep
  first_run = os.path.join(output_dir, FIRST_RUN)
  before = {path: _state(path) for path in (os.path.join(first_run, run_record.RUN_RECORD),
                                             first_run + '.log')}
  result = commands('sweep', f'--output_dir={output_dir}', *SWEEP_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  return dict(output_dir=output_dir, result=result, before=before)


@pytest.fixture(scope='module')
def swept(extended):
  """The output folder of the sweep of betas 0.5 and 1."""
  return extended['output_dir']


def _read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_a_sweep_trains_each_run_then_measures_its_suite(first_sweep):
  output_dir, result = first_sweep
  run_dir = os.path.join(output_dir, FIRST_RUN)
  assert result.stdout.startswith('1 runs, 0 finished, 1 to do\n'), result.stdout
  # Its two commands, in order, in the run's log.
  with open(run_dir + '.log') as f:
    commands = [line for line in f if line.startswith('# ')]
  assert len(commands) == 2, commands
  assert ' -m brokenelbo.train ' in commands[0] and ' -m brokenelbo.evaluate ' in commands[1]
  assert sweep.information_record(run_dir) is not None
  rows = _read_csv(os.path.join(output_dir, 'results.csv'))
  assert [(r['beta'], r['run_dir']) for r in rows] == [('1', run_dir)]
  assert np.isfinite(float(rows[0]['mutual_information']))  # The suite's cells are filled.


def test_a_sweep_given_another_beta_runs_only_the_new_run(extended):
  assert extended['result'].stdout.startswith('2 runs, 1 finished, 1 to do\n'), (
      extended['result'].stdout)
  # The first run's record and log are as they were: nothing of it ran again.
  assert {path: _state(path) for path in extended['before']} == extended['before']
  rows = _read_csv(os.path.join(extended['output_dir'], 'results.csv'))
  assert [r['beta'] for r in rows] == ['0.5', '1']


def test_csv_holds_each_runs_final_metrics(swept):
  rows = _read_csv(os.path.join(swept, 'results.csv'))
  assert [(r['family'], r['beta']) for r in rows] == [('---', '0.5'), ('---', '1')]
  assert list(rows[0]) == list(sweep.columns([1, 5]))
  for row in rows:
    assert (row['encoder'], row['decoder'], row['marginal']) == ('-', '-', '-')
    assert (row['dataset'], row['anneal'], row['seed'], row['epochs']) == (
        'static_mnist', '0', '0', '1')
    records = _final_records(row['run_dir'])
    # The run's own record holds the same final metrics.
    final = run_record.read_run_record(row['run_dir'])['metrics']
    assert final == {split: {k: v for k, v in r.items() if k not in ('step', 'epoch', 'split')}
                     for split, r in records.items()}
    for prefix, split in (('', 'test'), ('train_', 'train')):
      for name in ('rate', 'distortion', 'elbo'):
        assert float(row[prefix + name]) == pytest.approx(records[split][name], abs=1e-4)
      assert records[split]['beta'] == float(row['beta'])  # As the run's schedule saw it.
    assert float(row['elbo']) == pytest.approx(
        -(float(row['rate']) + float(row['distortion'])), abs=2e-4)


def test_csv_holds_each_runs_information_suite(swept):
  rows = _read_csv(os.path.join(swept, 'results.csv'))
  header = list(rows[0])
  # After the training's columns, before run_dir and the AIS curve's (empty: no run has
  # one); every column the figure reads is there.
  suite_columns = header[len(sweep.TRAINING_COLUMNS):header.index('run_dir')]
  assert suite_columns == [
      'nll_k1', 'nll_k1_stderr', 'nll_k5', 'nll_k5_stderr', *sweep.SUITE_COLUMNS]
  assert header[header.index('run_dir'):] == ['run_dir', *sweep.AIS_COLUMNS]
  assert set(information.COLUMNS) <= set(header)
  for row in rows:
    assert all(row[name] == '' for name in sweep.AIS_COLUMNS)
    suite = sweep.information_record(row['run_dir'])
    assert suite['step'] == _final_records(row['run_dir'])['test']['step']
    values = {name: float(row[name]) for name in suite_columns}
    assert all(np.isfinite(list(values.values())))
    renamed = dict(generative_g='generative_g_k5', generative_g_stderr='generative_g_k5_stderr')
    for name, value in values.items():
      if name != 'generative_g_num_samples':
        assert value == pytest.approx(suite[renamed.get(name, name)], abs=5e-5), name
    assert (values['likelihood_examples'], values['information_examples'],
            values['generative_examples'], values['generative_g_num_samples']) == (20, 20, 4, 5)
    assert 0 <= values['active_units'] <= 64 and values['active_units'] == int(
        values['active_units'])
    # NLL_1 is the -ELBO of the evaluation's own draws (same 20 examples, one batch).
    assert values['nll_k1'] == pytest.approx(-suite['elbo'], abs=1e-3)
    # E[L_K] rises with K (Burda et al. 2016, Theorem 1). The sample means can cross: the
    # noise of their difference has a standard deviation of at most se_1 + se_5 (whatever
    # the correlation of the shared draws), so 4 times that is a 4-sigma allowance.
    assert values['nll_k5'] <= values['nll_k1'] + 4 * (values['nll_k1_stderr'] +
                                                      values['nll_k5_stderr'])
    # Each term of I_e is at most log N, so the estimate is too (up to the CSV's rounding);
    # the marginal gap is R - I_e from the same draws; E <= G within 4 standard errors.
    assert values['log_num_examples'] == pytest.approx(np.log(20.), abs=1e-4)
    assert values['mutual_information'] <= values['log_num_examples'] + 1e-4
    assert values['marginal_kl'] == pytest.approx(
        values['rate_information'] - values['mutual_information'], abs=2e-4)
    assert values['generative_e'] <= values['generative_g'] + 4 * (
        values['generative_e_stderr'] + values['generative_g_stderr'])


def _checkpoint_files(run_dir):
  """{name: (size, mtime)} of the run's checkpoint files."""
  return {name: (os.stat(os.path.join(run_dir, name)).st_size,
                 os.stat(os.path.join(run_dir, name)).st_mtime_ns)
          for name in os.listdir(run_dir) if name.startswith('ckpt-') or name == 'checkpoint'}


def _commands(log_path, module):
  with open(log_path) as f:
    return [line for line in f if line.startswith('# ') and f' -m brokenelbo.{module} ' in line]


SUITELESS_RUN = os.path.join('---', 'beta=0.5_anneal=0_seed=0')


def _drop_suite(run_dir):
  """Leaves the run as trained with --noinformation: no evaluation record."""
  path = os.path.join(run_dir, run_record.EVALUATION_RECORD)
  if os.path.exists(path):
    os.remove(path)


def _row(results, run_dir):
  return {r['run_dir']: r for r in _read_csv(results)}[run_dir]


# The next three tests share the run that they leave without its suite; the third ends with
# the suite computed again, as the later tests of this module expect.
def test_a_run_without_its_suite_is_listed_only_to_evaluate(commands, swept):
  run_dir = os.path.join(swept, SUITELESS_RUN)
  results = os.path.join(swept, 'results.csv')
  _drop_suite(run_dir)
  # --noinformation: nothing to do, and the run's suite cells are empty.
  result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS, '--noinformation')
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 runs, 2 finished, 0 to do\n' in result.stdout
  row = _row(results, run_dir)
  assert all(row[name] == '' for name in ('nll_k1', *sweep.SUITE_COLUMNS))
  assert row['rate'] != '' and float(row['distortion']) > 0.
  # With the suite: the run is to be evaluated only.
  result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS, '--dry_run')
  assert result.returncode == 0, result.stderr[-3000:]
  lines = result.stdout.splitlines()
  assert lines[0] == '2 runs, 2 finished, 1 to do (1 only to evaluate)', result.stdout
  assert len(lines) == 2 and f'-m brokenelbo.evaluate --model_dir={run_dir} ' in lines[1]


@pytest.fixture(scope='module')
def suiteless_run(swept):
  """The run left without its suite, and its checkpoints, record and number of trainings
  as they were then."""
  run_dir = os.path.join(swept, SUITELESS_RUN)
  _drop_suite(run_dir)
  return dict(run_dir=run_dir, checkpoints=_checkpoint_files(run_dir),
              record_mtime=os.stat(os.path.join(run_dir, run_record.RUN_RECORD)).st_mtime_ns,
              trainings=len(_commands(run_dir + '.log', 'train')))


def test_a_failed_evaluation_is_listed_and_the_run_keeps_its_row(commands, swept,
                                                                 suiteless_run):
  run_dir = suiteless_run['run_dir']
  assert suiteless_run['checkpoints']
  # An evaluation that fails (its checkpoint cut short: none reads back): listed, non-zero
  # exit; the run keeps its row, not retrained. The checkpoint is put back afterwards.
  data = os.path.join(run_dir, 'ckpt-4.data-00000-of-00001')
  os.replace(data, data + '.kept')
  try:
    with open(data + '.kept', 'rb') as f, open(data, 'wb') as cut:
      cut.write(f.read(100))
    result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS)
  finally:
    os.replace(data + '.kept', data)
  assert result.returncode == 1, result.stderr[-3000:]
  failed = [line for line in result.stderr.splitlines() if line.startswith('failed: ')]
  assert len(failed) == 1 and failed[0].startswith(
      f'failed: {run_dir}: evaluation exit status 1: ') and failed[0].endswith(
          f'; see {run_dir}.log (its training is finished: running the same command again '
          'evaluates it)'), result.stderr[-3000:]
  row = _row(os.path.join(swept, 'results.csv'), run_dir)
  assert row['mutual_information'] == '' and row['rate'] != ''


def test_a_run_without_its_suite_gets_it_on_the_next_invocation_without_training(
    commands, swept, suiteless_run):
  run_dir = suiteless_run['run_dir']
  results = os.path.join(swept, 'results.csv')
  # The next invocation computes the suite, and trains nothing.
  result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 runs, 2 finished, 1 to do (1 only to evaluate)' in result.stdout
  suite = sweep.information_record(run_dir)
  row = _row(results, run_dir)
  assert float(row['mutual_information']) == pytest.approx(suite['mutual_information'],
                                                           abs=5e-5)
  assert float(row['nll_k5']) == pytest.approx(suite['nll_k5'], abs=5e-5)
  assert _checkpoint_files(run_dir) == suiteless_run['checkpoints']
  assert os.stat(os.path.join(run_dir, run_record.RUN_RECORD)).st_mtime_ns == suiteless_run[
      'record_mtime']
  assert len(_commands(run_dir + '.log', 'train')) == suiteless_run['trainings']
  assert len(_commands(run_dir + '.log', 'evaluate')) >= 2


def test_the_suite_counts_only_if_made_at_the_step_the_run_finished(tmp_path):
  model_dir = str(tmp_path)
  assert sweep.information_record(model_dir) is None  # No run record.
  run_record.write_run_record(model_dir, 10, 1., dict(test=dict(rate=1.)), 'config')
  assert sweep.information_record(model_dir) is None  # No evaluation.
  old = dict(split='test', step=8, mutual_information=1.)
  run_record.write_evaluation(model_dir, 'test', old)
  assert sweep.information_record(model_dir) is None  # Of an earlier step.
  run_record.write_evaluation(model_dir, 'test', dict(old, step=10, nll_k1=3.))
  assert sweep.information_record(model_dir) == dict(old, step=10, nll_k1=3.)
  run_record.write_evaluation(model_dir, 'test', dict(split='test', step=10, rate=1.))
  assert sweep.information_record(model_dir) is None  # Without the suite.


def test_the_sweep_writes_its_hparams_experiment_beside_the_runs_sessions(swept):
  # What TensorBoard's HParams dashboard reads (tests/test_hparams_dashboard.py reads it
  # through the plugin): one experiment at the top, a session in each run.
  paths = glob.glob(os.path.join(swept, '*' + hparams.EXPERIMENT_SUFFIX))
  assert len(paths) == 1
  infos = [hparams_metadata.parse_experiment_plugin_data(v.metadata.plugin_data.content)
           for event in event_file_loader.EventFileLoader(paths[0]).Load()
           for v in event.summary.value if v.tag == hparams_metadata.EXPERIMENT_TAG]
  domains = {h.name: [v.number_value or v.string_value for v in h.domain_discrete.values]
             for h in infos[0].hparam_infos}
  assert domains['family'] == ['---'] and domains['beta'] == [0.5, 1.]
  for row in _read_csv(os.path.join(swept, 'results.csv')):
    session = hparams.session(row['run_dir'])
    assert (session['family'], session['beta']) == (row['family'], float(row['beta']))


def test_rerun_skips_finished_runs(commands, swept):
  record = os.path.join(swept, '---', 'beta=1_anneal=0_seed=0', run_record.RUN_RECORD)
  before = os.stat(record).st_mtime_ns
  result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 runs, 2 finished, 0 to do' in result.stdout
  assert os.stat(record).st_mtime_ns == before


def test_a_run_without_its_record_gets_it_back_without_a_training_step(commands, swept):
  # A run directory that lost its record (its training was cut off while writing it, say):
  # the sweep runs `train`, which resumes at the last step, evaluates again and writes it.
  run_dir = os.path.join(swept, '---', 'beta=0.5_anneal=0_seed=0')
  before = run_record.read_run_record(run_dir)
  os.remove(os.path.join(run_dir, run_record.RUN_RECORD))
  log_size = os.path.getsize(run_dir + '.log')
  result = commands('sweep', f'--output_dir={swept}', *SWEEP_FLAGS)
  assert result.returncode == 0, result.stderr[-3000:]
  assert '2 runs, 1 finished, 1 to do' in result.stdout
  with open(run_dir + '.log') as f:
    f.seek(log_size)
    log = f.read()
  assert ' -m brokenelbo.train ' in log and ' -m brokenelbo.evaluate ' not in log
  assert 'Training' in log and ' | ' not in log  # No progress line: no step trained.
  assert run_record.read_run_record(run_dir) == before
  assert len(_read_csv(os.path.join(swept, 'results.csv'))) == 2


def test_evaluate_reproduces_the_runs_own_evaluation(commands, swept):
  run_dir = os.path.join(swept, '---', 'beta=1_anneal=0_seed=0')
  # The information suite at small counts, with the evaluation's batch size.
  result = commands('evaluate', f'--model_dir={run_dir}',
                '--gin_bindings=evaluate_run.max_examples = 50',
                '--gin_bindings=evaluate_run.batch_size = 50',
                '--gin_bindings=information_suite.batch_size = 50',
                '--gin_bindings=information_suite.num_samples = (1, 5, 20)',
                '--gin_bindings=information_suite.generative_examples = 10')
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.loads(result.stdout.strip().splitlines()[-1])
  final = _final_records(run_dir)['test']
  assert record['num_examples'] == final['num_examples'] == 50
  for name in ('rate', 'distortion', 'elbo'):
    assert record[name] == pytest.approx(final[name], abs=1e-5)
  assert run_record.read_evaluations(run_dir)['test'] == record  # The run's record of it.
  # NLL_1 is the -ELBO of the same z draws; the bound tightens with K; I_e <= min(R, log N)
  # and E <= G, each within 4 standard errors.
  assert record['nll_k1'] == pytest.approx(-record['elbo'], abs=1e-3)
  se = lambda name: 4 * record[f'{name}_stderr']
  assert record['nll_k5'] <= record['nll_k1'] + se('nll_k1')
  assert record['nll_k20'] <= record['nll_k5'] + se('nll_k5')
  assert record['mutual_information'] <= min(record['rate_information'],
                                             record['log_num_examples']) + se('mutual_information')
  assert record['generative_e'] <= record['generative_g_k20'] + se('generative_e') + se(
      'generative_g_k20')
  assert record['likelihood_examples'] == record['information_examples'] == 50
  # The same numbers as TensorBoard scalars, read back with TensorBoard's event loading.
  accumulator = event_accumulator.EventAccumulator(run_dir)
  accumulator.Reload()
  for name in ('rate', 'nll_k20', 'mutual_information', 'generative_g_k20'):
    tensor = accumulator.Tensors(f'evaluate/test/{name}')[-1]
    assert tensor.step == record['step']
    assert float(tf.make_ndarray(tensor.tensor_proto)) == pytest.approx(record[name], rel=1e-6)
  figure = os.path.join(run_dir, 'figures', 'figure4_test.png')
  assert os.path.getsize(figure) > 1000
  # The figure is not replaced unasked: one line, exit status 2, before any evaluation.
  before = os.stat(figure).st_mtime_ns
  again = commands('evaluate', f'--model_dir={run_dir}')
  assert again.returncode == errors.EXIT_USER_ERROR, again.stderr[-3000:]
  assert again.stderr.splitlines()[-1] == (f'error: {figure} exists; pass --overwrite to '
                                           'replace it')
  assert os.stat(figure).st_mtime_ns == before
  assert run_record.read_evaluations(run_dir)['test'] == record  # Nothing recorded.


def test_grids_decode_each_z_several_times(swept):
  run_dir = os.path.join(swept, '---', 'beta=0.5_anneal=0_seed=0')
  run = restore.restore_run(run_dir)
  vae = run.model
  x = run.settings['dataset']('test')[:3].astype(np.float32)
  seed = np.array([1, 2], np.int32)
  recon, generated = (t.numpy() for t in grids._grids(vae, x, 4, seed))
  assert recon.shape == (3, 5, 28, 28, 1) and generated.shape == (3, 4, 28, 28, 1)
  np.testing.assert_array_equal(recon[:, 0], x)
  assert set(np.unique(recon[:, 1:])) <= {0., 1.}
  # The decoder's own randomness is visible: decodes of the same z differ.
  assert not np.array_equal(recon[0, 1], recon[0, 2])
  # Deterministic given the seed.
  again = grids._grids(vae, x, 4, seed)[0].numpy()
  np.testing.assert_array_equal(again, recon)


SWEEP_BAD_INPUT = [
    (['--families=-x-'], "error: unknown families ['-x-']; choose from"),
    (['--families=---', '--betas=-1'], 'error: betas and anneal_epochs must be >= 0'),
    (['--families=---', '--betas=a'], "error: betas must be finite numbers, got 'a'"),
    (['--families=---', '--gin_bindings=train.nope = 1'],
     'error: invalid gin configuration in --gin_bindings: Configurable'),
    # The evaluation's bindings are parsed with the runs' configs, before anything runs.
    (['--families=---', '--evaluate_bindings=information_suite.nope = 1'],
     'error: invalid gin configuration in --evaluate_bindings: Configurable'),
    (['--families=---', '--evaluate_bindings=information_suite.num_samples = ()'],
     'error: information_suite.num_samples = (): must be a non-empty tuple'),
]


def test_sweep_bad_input(tmp_path, in_one_process):
  output_dir = str(tmp_path / 'sweep')
  outcomes, _ = in_one_process('sweep', [
      [f'--output_dir={output_dir}', '--gin_file=configs/smoke.gin', *args]
      for args, _ in SWEEP_BAD_INPUT])
  for (args, message), (status, lines) in zip(SWEEP_BAD_INPUT, outcomes):
    assert status == 2 and len(lines) == 1 and lines[0].startswith(message), (args, lines)
  assert not os.path.exists(output_dir)


def test_evaluate_refuses_a_folder_without_a_run(commands):
  with tempfile.TemporaryDirectory() as root:
    result = commands('evaluate', f'--model_dir={root}')
    assert result.returncode == 2
    assert _errors(result.stderr) == [f'error: {root} holds no run (no config.gin)']


def test_grid_skips_annealing_for_other_decoders():
  runs = grid.make_grid(['---', '-+-'], ['1'], ['0', '2'], '+', ['0', '1'])
  assert [(r['family'], r['anneal'], r['seed']) for r in runs] == [
      ('---', 0., 0), ('---', 0., 1), ('-+-', 0., 0), ('-+-', 0., 1), ('-+-', 2., 0),
      ('-+-', 2., 1)]
  assert grid.run_name(runs[4]) == 'beta=1_anneal=2_seed=0'
  with pytest.raises(errors.UserError):
    grid.make_grid(['---'], ['1'], ['0'], '+', ['x'])


def test_plot_draws_figures_4_to_6_from_the_runs_of_the_csv(commands, swept, tmp_path):
  output_dir = os.path.join(swept, 'figures')
  results = os.path.join(swept, 'results.csv')
  result = commands('plot', f'--results={results}', f'--output_dir={output_dir}',
                    '--figure4=---:0.5,---:1:0:0', '--figure5=1')
  assert result.returncode == 0, result.stderr[-3000:]
  assert ('note: figure5.png without --+, --v, -+-, -++, -+v, +--, +-+, +-v, ++-, +++, '
          '++v: no run at beta 1 without annealing\n') in result.stderr
  for name in ('figure3a.png', 'figure3b.png', 'figure4.png', 'figure5.png',
               'information.png'):
    assert os.path.getsize(os.path.join(output_dir, name)) > 1000
  for spec, message in (('---:7', "error: no run '---:7' in the results"),
                        ('---', "error: --figure4 entries are FAMILY:BETA[:ANNEAL[:SEED]], "
                                "got '---'")):
    bad = commands('plot', f'--results={results}', f'--output_dir={output_dir}_bad',
                   f'--figure4={spec}')
    assert bad.returncode == 2 and _errors(bad.stderr) == [message], bad.stderr[-2000:]
    assert not os.path.exists(output_dir + '_bad')
  # Figure 6 from runs whose checkpoints were not kept where the CSV says (a committed
  # sweep's), found under --checkpoints_dir (FAMILY/RUN, as scripts/retrain_runs.py puts
  # them).
  moved = tmp_path / 'moved.csv'
  moved.write_text(open(results).read().replace(swept, str(tmp_path / 'committed')))
  figure6 = ['plot', f'--results={moved}', f'--output_dir={tmp_path / "figures"}',
             '--figure6']
  bad = commands(*figure6)
  first = rd_plane.frontier_runs(rd_plane.read_results(str(moved)))[0]
  assert bad.returncode == 2 and _errors(bad.stderr) == [
      f"error: run '---:{first.beta:g}:0': no checkpoint in {first.run_dir} (Figure 4 is "
      'drawn from the trained model; scripts/retrain_runs.py retrains it)'], bad.stderr
  result = commands(*figure6, f'--checkpoints_dir={swept}')
  assert result.returncode == 0, result.stderr[-3000:]
  assert os.path.getsize(tmp_path / 'figures' / 'figure6.png') > 1000
