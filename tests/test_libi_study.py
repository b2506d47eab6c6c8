"""The LiBI table as a study (`python -m brokenelbo.libi`), end to end, through its commands.

One smoke study (LinearJTEx data set 0, the LiBI setting of the smoke profile, trained for
100 full-batch epochs with a checkpoint every 10) is the reference. Its results must hold
every restart's numbers, the kept restart and the exact ground truth; a rerun must do
nothing. The commands run as `python -m` would, through one server process (conftest's
`commands`). A study killed and resumed: `tests/test_libi_batched.py` (batched) and
`tests/test_slurm.py` (one run per setting, as a Slurm job array).
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from brokenelbo.data import synthetic as data

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STUDY = ['--profile=smoke', '--datasets=linear_jtex', '--methods=libi',
         '--gin_bindings=EPOCHS = 100',
         '--gin_bindings=train.checkpoint_every_steps = 10',
         '--gin_bindings=train.log_every_steps = 10']


def _arguments(root, *args):
  return [f'--output_dir={root}/runs', f'--results={root}/table1.json', *STUDY, *args]


def _libi(commands, root, *args):
  """The study's command, run by conftest's `commands`: its (stdout, stderr)."""
  result = commands('libi', *_arguments(root, *args))
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stdout, result.stderr


def _records(root):
  """The results' run records without their directory (which names `root`)."""
  with open(os.path.join(root, 'table1.json')) as f:
    results = json.load(f)
  return [{k: v for k, v in r.items() if k != 'run_dir'} for r in results['runs']], results


@pytest.fixture(scope='module')
def reference(commands, tmp_path_factory):
  root = tmp_path_factory.mktemp('reference')
  out, err = _libi(commands, root)
  return dict(root=root, out=out, err=err)


@pytest.mark.first
def test_the_study_records_every_restart_and_the_kept_one(reference):
  records, results = _records(reference['root'])
  assert [r['method'] for r in records] == ['libi']
  for record in records:
    assert record['step'] == 100 and len(record['restarts']) == 2
    assert record['selected'] == int(np.argmax(record['validation_objective']))
    for restart in record['restarts']:
      assert restart['mutual_information'] <= math.log(500) + 1e-6  # I <= log N.
      assert math.isfinite(restart['log_likelihood'])
  truth, = results['ground_truth']
  exact = np.mean(data.ground_truth('linear_jtex').exact_log_likelihood(
      data.synthetic('test', name='linear_jtex')))
  assert truth['log_likelihood'] == pytest.approx(exact)
  assert '| LinearJTEx | LiBI |' in reference['out'] and '-2.99 ± 0.03' in reference['out']
  # Each setting was one training and one evaluation process, logged beside its run.
  for record in results['runs']:
    with open(record['run_dir'] + '.log') as f:
      commands = [line for line in f if line.startswith('# ')]
    assert [(' -m brokenelbo.train ' in c, ' -m brokenelbo.evaluate ' in c)
            for c in commands] == [(True, False), (False, True)]


def test_a_rerun_does_nothing_and_print_only_prints(commands, reference):
  root = reference['root']
  before = (root / 'table1.json').read_text()
  _, err = _libi(commands, root)
  assert '1 settings, 1 evaluated before, 0 to do' in err
  assert (root / 'table1.json').read_text() == before
  printed = subprocess.run([sys.executable, '-m', 'brokenelbo.libi',
                            f'--results={root}/table1.json', '--print_only'],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
  assert printed.returncode == 0 and '| LinearJTEx | LiBI |' in printed.stdout


def test_a_dry_run_prints_the_commands_and_writes_nothing(commands, tmp_path):
  out, err = _libi(commands, tmp_path, '--dry_run')
  assert '1 settings, 0 evaluated before, 1 to do' in err
  lines = out.splitlines()
  assert len(lines) == 2 and ' -m brokenelbo.train ' in lines[0], out
  assert ' -m brokenelbo.evaluate ' in lines[1] and 'restarts_suite.method = ' in lines[1]
  assert os.listdir(tmp_path) == []
