"""Tests of the command lines' gin handling: how `--gin_file` resolves, settings that only a
flag may set, the empty-config contract of the run restorer, and the mistakes in flags
that are reported before TensorFlow loads."""

import os
import subprocess
import sys

import gin
import pytest

from brokenelbo import errors
from brokenelbo.experiments import grid
from brokenelbo.training import restore
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGED = os.path.join(REPO, 'brokenelbo', 'configs')


def test_gin_files_resolve_here_then_in_the_package(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  # Not here: the same relative path inside the installed package.
  assert cli.resolve_gin_file('configs/---.gin') == os.path.join(PACKAGED, '---.gin')
  # Here: the user's own file wins.
  (tmp_path / 'configs').mkdir()
  (tmp_path / 'configs' / '---.gin').write_text('train.epochs = 3\n')
  assert cli.resolve_gin_file('configs/---.gin') == str(tmp_path / 'configs' / '---.gin')
  # Never replaced by a packaged file of the same name.
  for missing in ('---.gin', 'elsewhere/---.gin', str(tmp_path / 'nowhere' / 'cpu.gin')):
    with pytest.raises(errors.UserError, match=f'gin file not found: {missing}'):
      cli.resolve_gin_file(missing)


def test_includes_resolve_from_any_directory(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  cli.parse_gin(['configs/-+v.gin', 'configs/smoke.gin'], [])
  # From base.gin through the family file's include, then the family's own binding.
  assert gin.query_parameter('train.batch_size') == 16
  assert gin.query_parameter('%LATENT_SIZE') == 64
  assert gin.query_parameter('VAE.marginal').configurable.name == 'VampPrior'


@pytest.mark.parametrize('binding', ['train.model_dir = "/tmp/x"', 'train.overwrite = True',
                                     'evaluate_run.split = "train"',
                                     'toy_experiment.output_dir = "/tmp/x"'])
def test_settings_of_flags_are_not_gin_bindable(binding):
  with pytest.raises(errors.UserError, match='invalid gin configuration'):
    cli.parse_gin([], [binding])


@pytest.mark.parametrize('binding', ['train.seed = 3', 'beta_schedule.beta = 2.',
                                     'beta_schedule.anneal_epochs=1'])
def test_sweep_refuses_bindings_of_its_grid(binding, tmp_path):
  with pytest.raises(errors.UserError, match=f'{binding.split("=")[0].strip()} is set per run'):
    grid.check_grid_settings_unbound(['configs/smoke.gin'], [binding])
  user_file = tmp_path / 'mine.gin'
  user_file.write_text(f'# a comment: train.seed = 1\n{binding}  # mine\n')
  with pytest.raises(errors.UserError, match='is set per run'):
    grid.check_grid_settings_unbound([str(user_file)], [])
  grid.check_grid_settings_unbound(['configs/smoke.gin', 'configs/cpu.gin'],
                                   ['train.epochs = 2'])


# `python -m brokenelbo.<tool> ARGS` in a process where `import tensorflow` fails.
_WITHOUT_TENSORFLOW = ('import runpy, sys; sys.modules["tensorflow"] = None; '
                       'sys.argv = sys.argv[1:]; runpy.run_module(sys.argv[0], '
                       'run_name="__main__", alter_sys=True)')


@pytest.mark.parametrize('tool, args, message', [
    ('train', ['--gin_file=configs/-x-.gin', '--model_dir={tmp}/run'],
     'gin file not found: configs/-x-.gin'),
    ('train', ['--gin_file=configs/---.gin', '--model_dir={tmp}/a_file/run'],
     'model_dir {tmp}/a_file/run is not writable: Not a directory'),
    ('toy', ['--output_dir={tmp}/a_file'], 'output_dir {tmp}/a_file is not writable: '
     'Not a directory'),
    ('sweep', ['--output_dir={tmp}/sweep', '--families=-x-'], "unknown families ['-x-']"),
    ('sweep', ['--output_dir={tmp}/sweep', '--betas=nan'],
     "betas must be finite numbers, got 'nan'"),
    ('sweep', ['--output_dir={tmp}/sweep', '--gin_bindings=train.seed = 1'],
     'train.seed is set per run by --seeds'),
    ('sweep', ['--output_dir=/dev/null/sweep'], 'output_dir /dev/null/sweep is not writable'),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json', '--methods=vae,nope'],
     '--methods: unknown nope (choose from vae, beta_vae, beta_vae_anneal, lagging, libi)'),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json', '--paired'],
     '--paired needs --print_only (it reads finished runs)'),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json', '--indices=0,5'],
     '--indices must be in [0, 5)'),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json',
              '--members_per_run=many'], "--members_per_run must be an integer, got 'many'"),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json', '--profile=smoke',
              '--members_per_run=1'], '--members_per_run=1: a batched run trains every '
     'restart of a setting, so it must be at least 2 (the restarts of a setting on '
     'linear_jtex)'),
    ('libi', ['--output_dir={tmp}/runs', '--results={tmp}/table1.json', '--members_per_run=40',
              '--gin_bindings=SyntheticVAE.restarts = 3'], '--gin_bindings: '
     'SyntheticVAE.restarts is set per batched run by --members_per_run; remove it'),
])
def test_mistakes_in_flags_are_reported_before_tensorflow_loads(tool, args, message,
                                                                 tmp_path):
  (tmp_path / 'a_file').write_text('not a folder')
  args = [a.format(tmp=tmp_path) for a in args]
  result = subprocess.run([sys.executable, '-c', _WITHOUT_TENSORFLOW, f'brokenelbo.{tool}',
                           *args], cwd=REPO, capture_output=True, text=True, timeout=60)
  assert result.returncode == errors.EXIT_USER_ERROR, result.stderr[-2000:]
  lines = result.stderr.splitlines()
  assert len(lines) == 1 and lines[0].startswith(f'error: {message.format(tmp=tmp_path)}'), (
      lines)
  assert os.listdir(tmp_path) == ['a_file']  # Nothing made.


def test_libi_prints_the_committed_table_without_tensorflow():
  result = subprocess.run([sys.executable, '-c', _WITHOUT_TENSORFLOW, 'brokenelbo.libi',
                           '--results=results/libi/table1.json', '--print_only'],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
  assert result.returncode == 0, result.stderr[-2000:]
  assert '| LinearJTEx | LiBI |' in result.stdout and '-3.15 ± 0.04' in result.stdout


def test_restoring_never_merges_into_the_callers_config(tmp_path):
  gin.parse_config('train.epochs = 7')
  with pytest.raises(ValueError, match='clear_config'):
    restore.run_settings(['configs/---.gin'])
  assert gin.query_parameter('train.epochs') == 7  # The caller's config is untouched.
  gin.clear_config()
  settings = restore.run_settings(['configs/---.gin', 'configs/cpu.gin'])
  # The run's values, then train's own defaults for everything unbound.
  assert settings['batch_size'] == 64 and settings['epochs'] == 4
  assert settings['eval_batch_size'] == 500 and settings['max_train_examples'] is None
  assert settings['dataset'].__name__ == 'static_mnist'
