"""Converts the committed sweeps' run directories to the run records, once.

Run once on 2026-12-07, after `scripts/convert_results_configs.py`, on `results/mnist_rd/`
and `results/mnist_info/`:

  python scripts/convert_results_records.py results/mnist_rd results/mnist_info

Before, a finished sweep run held `sweep.json` (written by the sweep: its grid settings,
its final metrics, its command and time), and `brokenelbo.evaluate` appended its records
to the run's `metrics.jsonl` with `"source": "evaluate"`. Now a run writes its own
`run.json` when training finishes, and `evaluate` writes `evaluation.json`
(`training.run_record`). For each run directory with a `sweep.json`, this writes
`run.json` (step, epoch and metrics of the final evaluation, the digest of `config.gin`,
the hyper-parameters of its HParams session, and under `sweep` the training command and
seconds that the sweep had recorded) and, from the `evaluate` records,
`evaluation.json` (the last record of each split; for the test split, the last one that
the sweep took for the run's information suite: made at the final step, with the suite,
on examples spread through the split, i.e. with `likelihood_stride`); then it removes those
records from `metrics.jsonl` and deletes `sweep.json`. Then
`python -m brokenelbo.sweep --output_dir=results/mnist_rd --results=results/mnist_rd.csv
--collect_only` rewrote that CSV, which an earlier version had written without the
information suite's (empty) columns: the same cells, and the figures drawn from it are
byte-identical; `results/mnist_info.csv` came back byte-identical.
"""

import json
import os
import re
import sys

from brokenelbo.training import run_record
from brokenelbo.utils import files

_NOT_METRICS = ('step', 'epoch', 'split')


def _batch_size(config_text):
  """`train.batch_size` of a run's config (100, `train`'s default, where unbound)."""
  match = re.search(r'^train\.batch_size = (\d+)$', config_text, re.M)
  return int(match.group(1)) if match else 100


def convert(model_dir):
  """Converts one run directory; returns whether it held a `sweep.json`."""
  sweep_path = os.path.join(model_dir, 'sweep.json')
  if not os.path.exists(sweep_path):
    return False
  with open(sweep_path) as f:
    old = json.load(f)
  with open(os.path.join(model_dir, 'config.gin')) as f:
    config = f.read()
  with open(os.path.join(model_dir, 'metrics.jsonl')) as f:
    records = [json.loads(line) for line in f]
  final = old['metrics']
  family = old['family']
  hparams = dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
                 dataset=old['dataset'], beta=float(old['beta']),
                 anneal_epochs=float(old['anneal']), seed=int(old['seed']),
                 epochs=float(old['epochs']), batch_size=_batch_size(config))
  metrics = {split: {k: v for k, v in record.items() if k not in _NOT_METRICS}
             for split, record in final.items()}
  run_record.write_run_record(model_dir, final['test']['step'], final['test']['epoch'],
                              metrics, config, hparams)
  path = os.path.join(model_dir, run_record.RUN_RECORD)
  with open(path) as f:
    record = json.load(f)
  record['sweep'] = dict(command=old['command'], seconds=old['seconds'])
  files.write_atomic(path, files.to_json(record, indent=2, sort_keys=True) + '\n')
  evaluations = {}
  for record in records:
    if record.get('source') != 'evaluate':
      continue
    record = {k: v for k, v in record.items() if k != 'source'}
    if record['split'] == 'test':
      if (record['step'] == final['test']['step'] and 'mutual_information' in record
          and 'likelihood_stride' in record):
        evaluations['test'] = record
    else:
      evaluations[record['split']] = record
  for split, record in evaluations.items():
    run_record.write_evaluation(model_dir, split, record)
  kept = [r for r in records if 'source' not in r]
  files.write_atomic(os.path.join(model_dir, 'metrics.jsonl'),
                     ''.join(files.to_json(r) + '\n' for r in kept))
  os.remove(sweep_path)
  return True


def main(roots):
  converted = 0
  for root in roots:
    for folder, _, names in sorted(os.walk(root)):
      if 'sweep.json' in names:
        converted += convert(folder)
  print(f'{converted} runs converted')


if __name__ == '__main__':
  main(sys.argv[1:])
