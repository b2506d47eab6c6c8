"""The committed MNIST sweep (`results/mnist_rd.csv`) agrees with its run records.

Each CSV row must come from a run directory in the repository whose `metrics.jsonl` holds
the row's final test and train evaluations, whose `sweep.json` names the row's settings,
and whose `config.gin` binds the row's beta, annealing and seed: a row edited by hand, or a
run directory that was not committed, fails here.
"""

import csv
import json
import os

import pytest

from brokenelbo.experiments import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSV = os.path.join(ROOT, 'results', 'mnist_rd.csv')


def _rows():
  if not os.path.exists(CSV):
    return []
  with open(CSV) as f:
    return list(csv.DictReader(f))


@pytest.mark.skipif(not _rows(), reason='no committed sweep')
@pytest.mark.parametrize('row', _rows(), ids=lambda r: r['run_dir'])
def test_row_matches_its_run_records(row):
  run_dir = os.path.join(ROOT, row['run_dir'])
  with open(os.path.join(run_dir, 'sweep.json')) as f:
    record = json.load(f)
  for key in ('family', 'dataset'):
    assert record[key] == row[key]
  for key in ('beta', 'anneal', 'seed', 'epochs'):
    assert float(record[key]) == float(row[key])
  final = sweep.final_metrics(run_dir, float(row['epochs']))
  for split, prefix in (('test', ''), ('train', 'train_')):
    for metric in ('rate', 'distortion', 'elbo'):
      assert float(row[prefix + metric]) == pytest.approx(final[split][metric], abs=1e-4)
  with open(os.path.join(run_dir, 'config.gin')) as f:
    config = f.read()
  assert f"beta_schedule.beta = {float(row['beta'])}" in config
  assert f"beta_schedule.anneal_epochs = {float(row['anneal'])}" in config
  assert f"train.seed = {int(float(row['seed']))}" in config
