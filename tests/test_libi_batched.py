"""The LiBI table as a batched study (`python -m brokenelbo.libi --members_per_run=N`).

The grid: the beta-VAE's two settings of the `smoke_grid` profile (beta 0.5 and 2) on
LinearJTEx data sets 0 and 1, 2 restarts each, 100 full-batch epochs (a checkpoint every
10): 8 members, one batched run. Its records must be, setting by setting, those of the
unbatched study of the same grid (the same kept restart, the same numbers to `RTOL`), whose
runs are trained and evaluated here by the library calls of `python -m brokenelbo.train`
and `evaluate`; its kept restarts must restore as those of the unbatched runs (what
Figures 2-5 draw); and the same batched study killed (SIGKILL, the command and its
training together) after its first checkpoint and run again must end with the very same
records, after which a rerun does nothing. `tests/test_cli.py` checks the flag's bad
values.
"""

import json
import math
import os
import signal
import subprocess
import sys
import time

import gin
import numpy as np
import pytest

from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.evaluation import evaluate_run
from brokenelbo.experiments import libi_paired
from brokenelbo.experiments import libi_runs
from brokenelbo.experiments import libi_table
from brokenelbo.training import restore
from brokenelbo.training import trainer
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GRID = ['--profile=smoke_grid', '--datasets=linear_jtex', '--methods=beta_vae']
EXTRA = ['EPOCHS = 100', 'train.checkpoint_every_steps = 10', 'train.log_every_steps = 10']
BATCHED = [*GRID, *[f'--gin_bindings={b}' for b in EXTRA], '--members_per_run=8']
# Batched against alone, through the same code. For the beta-VAE the members train
# bit-identically to their runs alone when M / R is a power of 2 (here 4: Adam's epsilon and
# the losses' means scale exactly), and each data set's members are evaluated together by
# the functions that evaluate a run alone. Measured: 0 (every number bit-identical).
RTOL, ATOL = 1e-6, 1e-9


def _libi(commands, root, *args):
  """The study's command with the batched flags, run by conftest's `commands`."""
  result = commands('libi', f'--output_dir={root}/runs', f'--results={root}/table1.json',
                    *BATCHED, *args)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout, result.stderr


def _records(root):
  """`{(index, setting name): record}` of the results, without what names the run's
  directory."""
  with open(os.path.join(root, 'table1.json')) as f:
    runs = json.load(f)['runs']
  return {(r['index'], libi_table.setting_name(r['setting'])):
          {k: v for k, v in r.items() if k not in ('run_dir', 'batch', 'members')}
          for r in runs}


def _study(root, members_per_run):
  """The study of the grid (batched with `members_per_run`), each of its runs trained and
  evaluated in this process by the library calls of its commands (`train`, `evaluate`);
  its records."""
  profile = libi_table.PROFILES['smoke_grid']
  study = libi_runs.make_study(str(root / 'runs'), str(root / 'table1.json'), 'smoke_grid',
                               ['linear_jtex'], ['beta_vae'], gin_bindings=EXTRA,
                               members_per_run=members_per_run)
  for run in study.runs:
    model_dir = study.model_dir(run)
    cli.parse_gin(run.gin_files(), libi_runs.train_bindings(run, profile, EXTRA))
    trainer.train(model_dir=model_dir)
    gin.clear_config()
    restored = restore.restore_run(model_dir, libi_runs.evaluate_bindings(run, profile))
    evaluate_run.evaluate_run(restored, model_dir, 'test')
    gin.clear_config()
  study.collect()
  return _records(root)


@pytest.fixture(scope='module')
def studies(tmp_path_factory):
  roots = {name: tmp_path_factory.mktemp(name) for name in ('batched', 'unbatched')}
  return dict(roots=roots, batched=_study(roots['batched'], 8),
              alone=_study(roots['unbatched'], None))


def _assert_close(batched, alone, where):
  """Every number of `batched` within `RTOL` of `alone`'s, every other value equal."""
  if isinstance(alone, dict):
    assert batched.keys() == alone.keys(), where
    for key in alone:
      _assert_close(batched[key], alone[key], f'{where}.{key}')
  elif isinstance(alone, list):
    assert len(batched) == len(alone), where
    for i, (b, a) in enumerate(zip(batched, alone)):
      _assert_close(b, a, f'{where}[{i}]')
  elif isinstance(alone, float):
    np.testing.assert_allclose(batched, alone, rtol=RTOL, atol=ATOL, err_msg=where)
  else:
    assert batched == alone, where


@pytest.mark.first
def test_a_batched_study_keeps_the_same_restarts_with_the_same_numbers(studies):
  batched, alone = studies['batched'], studies['alone']
  assert sorted(batched) == sorted(alone) == [
      (index, f'beta={beta}') for index in (0, 1) for beta in ('0.5', '2')]
  for key, record in alone.items():
    assert batched[key]['selected'] == record['selected'] is not None, key
    _assert_close(batched[key], record, str(key))
  # The settings' numbers differ (each member had its own beta and data set).
  kept = {key: r['restarts'][r['selected']]['log_likelihood'] for key, r in alone.items()}
  assert len({round(v, 3) for v in kept.values()}) == 4, kept
  # Each record names its batch and members; its kept member restores as the kept
  # restart of its run alone (Figures 2-5 draw it).
  with open(studies['roots']['batched'] / 'table1.json') as f:
    record = next(r for r in json.load(f)['runs'] if r['index'] == 1
                  and r['setting'] == {'beta': 2.})
  assert record['members'] == [6, 7] and record['run_dir'].endswith(record['batch'])
  member = record['members'][record['selected']]
  models = []
  for model_dir in (record['run_dir'], str(studies['roots']['unbatched'] / 'runs' /
                                             'linear_jtex' / '1' / 'beta_vae' / 'beta=2')):
    gin.clear_config()
    models.append(restore.restore_run(model_dir).model)
  gin.clear_config()
  one = models[0].select_members([member])
  for name, variable in {**one.theta, **one.phi}.items():
    np.testing.assert_allclose(variable.numpy()[0], (models[1].theta | models[1].phi)[name]
                               .numpy()[record['selected']], rtol=RTOL, err_msg=name)


@pytest.mark.first  # Beside the test above, which sets up `studies` once per module.
def test_a_killed_batched_study_resumes_to_the_same_records(commands, studies, tmp_path):
  batch, = libi_table.make_batches(libi_table.PROFILES['smoke_grid'], 8, ['linear_jtex'],
                                   ['beta_vae'])
  run_dir = tmp_path / 'runs' / batch.relative_dir()
  # Stand-ins for the ground truth's records, which the study computes only where none
  # exists and which this test does not compare: only the runs' work is done.
  for index in (0, 1):
    truth = tmp_path / 'runs' / 'linear_jtex' / str(index) / libi_runs.TRUTH_FILE
    truth.parent.mkdir(parents=True)
    truth.write_text(json.dumps(dict(
        dataset='linear_jtex', index=index, log_likelihood=-3., log_likelihood_kind='exact',
        knn=dict(mean=0.), mutual_information=5., marginal_kl=0.)))
  process = subprocess.Popen(
      [sys.executable, '-m', 'brokenelbo.libi', f'--output_dir={tmp_path}/runs',
       f'--results={tmp_path}/table1.json', *BATCHED], cwd=REPO, stdout=subprocess.PIPE,
      stderr=subprocess.PIPE, text=True, start_new_session=True)
  while not (run_dir / 'checkpoint').exists():
    assert process.poll() is None, process.communicate()[1][-3000:]
    time.sleep(0.05)
  os.killpg(process.pid, signal.SIGKILL)  # The command and its training, as a crash would.
  process.communicate()
  assert not (run_dir / 'run.json').exists()
  _, err = _libi(commands, tmp_path)
  assert '1 batched runs of at most 8 members, 0 evaluated before, 1 to do' in err
  with open(str(run_dir) + '.log') as f:
    assert 'Resumed from' in f.read()
  assert _records(tmp_path) == studies['batched']
  # A rerun with the same flags does nothing, and the table prints from the results.
  before = (tmp_path / 'table1.json').read_text()
  _, err = _libi(commands, tmp_path)
  assert '4 settings in 1 batched runs of at most 8 members, 1 evaluated before, 0 to do' in err
  assert (tmp_path / 'table1.json').read_text() == before
  printed = commands('libi', f'--results={tmp_path}/table1.json', '--print_only')
  assert printed.returncode == 0 and '| LinearJTEx | beta-VAE |' in printed.stdout
  assert '4 settings evaluated' in printed.stdout


def test_the_paired_comparison_restores_each_kept_member(studies, tmp_path):
  # Point by point against the ground truth (closed form) on each data set's test points,
  # the kept member restored from its batch: the mean difference must be the difference of
  # the exact test log-likelihoods that the evaluation recorded (another member would give
  # another).
  with open(studies['roots']['batched'] / 'table1.json') as f:
    results = json.load(f)
  rows = libi_paired.paired_comparison(results, reference='beta_vae')
  assert [(r['dataset'], r['index'], r['method']) for r in rows] == [
      ('linear_jtex', 0, 'truth'), ('linear_jtex', 1, 'truth')]
  setting = results['table']['linear_jtex']['beta_vae']['setting']
  for row in rows:
    record = next(r for r in results['runs'] if r['index'] == row['index']
                  and libi_table.setting_name(r['setting']) == setting)
    kept = record['restarts'][record['selected']]
    truth = data.ground_truth('linear_jtex').exact_log_likelihood(
        data.synthetic('test', name='linear_jtex', index=row['index']))
    assert row['log_likelihood'] == pytest.approx(
        kept['exact_log_likelihood'] - np.mean(truth), abs=1e-9)
    assert 0 < row['log_likelihood_stderr'] < 1
    assert math.isnan(row['knn'])  # This study wrote no ground-truth records.
  lines = libi_paired.format_paired(rows, 'beta_vae').split('\n')
  assert lines[2].startswith('| LinearJTEx | 0 | ground truth | ')
  # Runs that are not where the results say: one error, before any computation.
  with pytest.raises(errors.UserError, match=r'^no checkpoint of the kept beta_vae run on '
                     r'linear_jtex data set \d in '):
    libi_paired.paired_comparison(results, output_dir=str(tmp_path), reference='beta_vae')
