"""Bad input files and unwritable outputs, through the real command lines.

Every case runs `python -m brokenelbo.<tool>` on a folder of its own holding a damaged input
(a results JSON cut short or of the wrong shape, a folder where a file is due, a CSV with an
empty, non-numeric or missing cell, a damaged run record) or naming an output that cannot
be written. Each must exit with status 2 and one line on stderr that names the file (and
the place in it), before any work: the folder is afterwards byte for byte what it was,
nothing added. The processes run at once (each checks its files before TensorFlow loads);
`read_json`, `check_schema` and `read_csv` are also checked in this process.
"""

import os
import re
import subprocess
import sys

import pytest

from brokenelbo import errors
from brokenelbo.utils import files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TABLE1 = os.path.join(REPO, 'results', 'libi', 'table1.json')
# TensorFlow's and absl's native log lines (`I1207 04:18:39.43 ...`, `E0000 00:00:...`).
_NATIVE_LOG = re.compile(r'^([IWEF]\d{4} |WARNING: All log messages|To enable the following)')
# Two rows of a sweep's CSV (`experiments.sweep`, the columns `visualize.rd_plane` reads).
_CSV = ('family,encoder,decoder,marginal,dataset,beta,anneal,seed,rate,distortion,elbo,'
        'run_dir\n'
        '---,-,-,-,static_mnist,0.1,0,0,104.2981,62.4382,-166.7363,runs/a\n'
        '---,-,-,-,static_mnist,0.5,0,0,42.6151,72.7802,-115.3953,runs/b\n')
# A study's flags that would train one smoke run if nothing were wrong.
_STUDY = ('--profile=smoke', '--datasets=linear_jtex', '--methods=vae')
_IS_ROOT = os.geteuid() == 0  # Root ignores a folder's mode: no read-only case.


def _write(path, content):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, 'wb' if isinstance(content, bytes) else 'w') as f:
    f.write(content)
  return path


def _libi_cases(root):
  """`{case: (tool, args, named path, message pattern)}` of libi's `--results`; each case's
  files are in `root/<case>/`."""
  with open(TABLE1, 'rb') as f:
    head = f.read()[:500]
  cut = _write(f'{root}/cut_short_results/table1.json', head)
  listed = _write(f'{root}/results_of_the_wrong_schema/table1.json', '[]')
  keys = _write(f'{root}/results_without_the_table/table1.json', '{"x": 1}')
  folder = f'{root}/directory_as_results/table1.json'
  os.makedirs(folder)
  kept = _write(f'{root}/damaged_results_of_a_study/table1.json', head)
  study = f'{root}/directory_as_results_of_a_study'
  os.makedirs(f'{study}/somedir')
  return {
      'cut_short_results': ('libi', [f'--results={cut}', '--print_only'], cut,
                            r'is not valid JSON: .* \(line \d+, column \d+\)$'),
      'results_of_the_wrong_schema': ('libi', [f'--results={listed}', '--print_only'], listed,
                                      'the top level is an array, not an object$'),
      'results_without_the_table': ('libi', [f'--results={keys}', '--print_only'], keys,
                                    "the top level has no key 'table'$"),
      'directory_as_results': ('libi', [f'--results={folder}', '--print_only'], folder,
                               'cannot be read: Is a directory$'),
      # A study rewrites its --results: a damaged one is refused, not replaced.
      'damaged_results_of_a_study': (
          'libi', [f'--output_dir={root}/damaged_results_of_a_study/runs/l',
                   f'--results={kept}', *_STUDY], kept, 'is not valid JSON'),
      'directory_as_results_of_a_study': (
          'libi', [f'--output_dir={study}/runs/l', f'--results={study}/somedir', *_STUDY],
          f'{study}/somedir', 'is a directory, not a file$'),
  }


def _csv_cases(root):
  """Cases of plot's `--results`, and of plot's and the sweep's outputs."""
  empty = _write(f'{root}/csv_missing_cell/sweep.csv', _CSV.replace(',72.7802,', ',,'))
  text = _write(f'{root}/csv_non_numeric_cell/sweep.csv', _CSV.replace('104.2981', 'lots'))
  short = _write(f'{root}/csv_short_row/sweep.csv', _CSV.replace(',runs/b', ''))
  good = _write(f'{root}/figures_under_a_file/sweep.csv', _CSV)
  a_file = _write(f'{root}/figures_under_a_file/a_file', 'not a folder')
  sweep = f'{root}/sweep_csv_is_a_directory'
  os.makedirs(f'{sweep}/results.csv')
  return {
      'csv_missing_cell': ('plot', [f'--results={empty}', f'--output_dir={empty}.figures'],
                           empty, r'line 3: distortion is empty$'),
      'csv_non_numeric_cell': ('plot', [f'--results={text}', f'--output_dir={text}.figures'],
                               text, r"line 2: rate is not a number: 'lots'$"),
      'csv_short_row': ('plot', [f'--results={short}', f'--output_dir={short}.figures'],
                        short, 'line 3 has 11 fields, the header 12: no value from column '
                        'run_dir on$'),
      'figures_under_a_file': ('plot', [f'--results={good}',
                                        f'--output_dir={a_file}/figures'],
                               f'{a_file}/figures', 'is not writable: Not a directory$'),
      'sweep_csv_is_a_directory': ('sweep', [f'--output_dir={sweep}/runs',
                                             f'--results={sweep}/results.csv',
                                             '--families=---'],
                                   f'{sweep}/results.csv', 'is a directory, not a file$'),
  }


def _record_cases(root):
  """Cases of a run's records, which evaluate reads before TensorFlow loads."""
  cut, wrong = f'{root}/cut_short_run_record', f'{root}/evaluation_record_of_the_wrong_schema'
  for run in (cut, wrong):
    _write(f'{run}/config.gin', 'train.epochs = 1\n')
  record = _write(f'{cut}/run.json', '{"step": 10, "metrics": {"test": {"rate": 1.')
  evaluation = _write(f'{wrong}/evaluation.json', '{"test": {"rate": 1.0}}')
  return {
      'cut_short_run_record': ('evaluate', [f'--model_dir={cut}'], record,
                               r'^error: run record .* is not valid JSON'),
      'evaluation_record_of_the_wrong_schema': ('evaluate', [f'--model_dir={wrong}'],
                                                evaluation, "test has no key 'step'$"),
  }


def _read_only_cases(root):
  """Outputs in a folder `root/<case>/read_only`, which the fixture makes mode 0o555 (no
  case as root, whom modes do not stop)."""
  if _IS_ROOT:
    return {}
  study, figures, sweep = (f'{root}/read_only_{name}' for name in ('study_dir', 'figures_dir',
                                                                     'sweep_csv'))
  good = _write(f'{figures}/sweep.csv', _CSV)
  for case in (study, figures, sweep):
    os.makedirs(f'{case}/read_only')
  return {
      'read_only_study_dir': ('libi', [f'--output_dir={study}/read_only/runs',
                                       f'--results={study}/t.json', *_STUDY],
                              f'{study}/read_only/runs', 'is not writable: Permission denied$'),
      'read_only_figures_dir': ('plot', [f'--results={good}',
                                         f'--output_dir={figures}/read_only/figures'],
                                f'{figures}/read_only/figures',
                                'is not writable: Permission denied$'),
      'read_only_sweep_csv': ('sweep', [f'--output_dir={sweep}/runs',
                                        f'--results={sweep}/read_only/results.csv',
                                        '--families=---'],
                              f'{sweep}/read_only/results.csv',
                              'is not writable: Permission denied$'),
  }


def _snapshot(folder):
  """`{relative path: bytes, or None for a folder}` of everything under `folder`."""
  found = {}
  for root, dirs, names in os.walk(folder):
    for name in dirs:
      found[os.path.relpath(os.path.join(root, name), folder)] = None
    for name in names:
      with open(os.path.join(root, name), 'rb') as f:
        found[os.path.relpath(os.path.join(root, name), folder)] = f.read()
  return found


def _error_lines(stderr):
  return [line for line in stderr.splitlines() if line.strip() and not _NATIVE_LOG.match(line)]


@pytest.fixture(scope='module')
def ran(tmp_path_factory):
  """Runs every case at once: `(cases, {case: (status, error lines, stderr)}, snapshot
  before, snapshot after)`, the snapshots of the whole folder (`_snapshot`)."""
  root = str(tmp_path_factory.mktemp('bad_files'))
  cases = {**_libi_cases(root), **_csv_cases(root), **_record_cases(root),
           **_read_only_cases(root)}
  read_only = [f'{root}/{case}/read_only' for case in cases if case.startswith('read_only')]
  for folder in read_only:
    os.chmod(folder, 0o555)
  try:
    before = _snapshot(root)
    processes = {name: subprocess.Popen(
        [sys.executable, '-m', f'brokenelbo.{tool}', *args], cwd=REPO, text=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for name, (tool, args, _, _) in cases.items()}
    results = {}
    for name, process in processes.items():
      _, stderr = process.communicate(timeout=120)
      results[name] = (process.returncode, _error_lines(stderr), stderr)
    after = _snapshot(root)
  finally:
    for folder in read_only:
      os.chmod(folder, 0o755)  # So that pytest can remove it.
  return cases, results, before, after


@pytest.mark.parametrize('case', [
    'cut_short_results', 'results_of_the_wrong_schema', 'results_without_the_table',
    'directory_as_results', 'damaged_results_of_a_study', 'directory_as_results_of_a_study',
    'csv_missing_cell', 'csv_non_numeric_cell', 'csv_short_row', 'figures_under_a_file',
    'sweep_csv_is_a_directory', 'cut_short_run_record',
    'evaluation_record_of_the_wrong_schema', 'read_only_study_dir', 'read_only_figures_dir',
    'read_only_sweep_csv'])
def test_a_bad_file_is_one_line_and_exit_status_2_and_changes_nothing(ran, case):
  cases, results, before, after = ran
  if case not in cases:
    pytest.skip('running as root, which a read-only folder does not stop')
  _, _, named, pattern = cases[case]
  status, lines, stderr = results[case]
  assert status == errors.EXIT_USER_ERROR, stderr[-2000:]
  assert len(lines) == 1 and lines[0].startswith('error: '), stderr[-2000:]
  assert named in lines[0] and re.search(pattern, lines[0]), lines[0]
  assert 'Traceback' not in stderr
  # Nothing the user had is changed, nothing is made (no run directory, no figure).
  assert ({k: v for k, v in after.items() if k.split(os.sep)[0] == case} ==
          {k: v for k, v in before.items() if k.split(os.sep)[0] == case})


def test_the_readers_name_the_place(tmp_path):
  results = {'table': {}, 'ground_truth': [], 'runs': [{'knn': {'mean': 'high'}}]}
  schema = {'table': {str: {}}, 'runs': [{'knn': {'mean': files.NUMBER_OR_NULL}}]}
  with pytest.raises(errors.UserError, match=r"^x f: runs\[0\]\.knn\.mean is a string, not "
                     r"a number or null$"):
    files.check_schema(results, schema, 'x', 'f')
  with pytest.raises(errors.UserError, match=r'runs\[0\]\.knn\.mean is a boolean'):
    files.check_schema({**results, 'runs': [{'knn': {'mean': True}}]}, schema, 'x', 'f')
  files.check_schema({**results, 'runs': [{'knn': {'mean': None}}]}, schema, 'x', 'f')
  path = _write(str(tmp_path / 'r.json'), '{"a": [1,\n 2,, 3]}')
  with pytest.raises(errors.UserError, match=r'r.json is not valid JSON: .*\(line 2, column 4\)'):
    files.read_json(path, 'x')
  assert files.read_json(str(tmp_path / 'none.json'), 'x', missing_ok=True) is None
  path = _write(str(tmp_path / 'r.csv'), 'a,b\n1,2\n3\n')
  with pytest.raises(errors.UserError, match='line 3 has 1 fields, the header 2: no value '
                     'from column b on'):
    files.read_csv(path, 'results')
  with pytest.raises(errors.UserError, match=r"r.csv line 2: b is not an integer: '2.5'"):
    files.csv_number('2.5', 'b', f'{path} line 2', kind=int)


def test_a_folder_this_user_may_not_write_is_refused(tmp_path, monkeypatch):
  # What a folder of mode 0o555 is to a user who is not root (root ignores the mode).
  monkeypatch.setattr(os, 'access', lambda path, mode: False)
  path = str(tmp_path / 'r.json')
  with pytest.raises(errors.UserError,
                     match=f'^--results {path} is not writable: Permission denied$'):
    files.check_can_write_file(path, '--results')
  with pytest.raises(errors.UserError, match='^--output_dir .* is not writable: Permission '):
    files.check_can_create_dir(str(tmp_path / 'a' / 'b'), '--output_dir')
