"""Tests of the command lines' gin handling: how `--gin_file` resolves, settings that only a
flag may set, and the empty-config contract of the run restorer."""

import os

import gin
import pytest

from brokenelbo.experiments import sweep
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
    with pytest.raises(cli.UserError, match=f'gin file not found: {missing}'):
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
  with pytest.raises(cli.UserError, match='invalid gin configuration'):
    cli.parse_gin([], [binding])


@pytest.mark.parametrize('binding', ['train.seed = 3', 'beta_schedule.beta = 2.',
                                     'beta_schedule.anneal_epochs=1'])
def test_sweep_refuses_bindings_of_its_grid(binding, tmp_path):
  with pytest.raises(cli.UserError, match=f'{binding.split("=")[0].strip()} is set per run'):
    sweep.check_grid_settings_unbound(['configs/smoke.gin'], [binding])
  user_file = tmp_path / 'mine.gin'
  user_file.write_text(f'# a comment: train.seed = 1\n{binding}  # mine\n')
  with pytest.raises(cli.UserError, match='is set per run'):
    sweep.check_grid_settings_unbound([str(user_file)], [])
  sweep.check_grid_settings_unbound(['configs/smoke.gin', 'configs/cpu.gin'],
                                    ['train.epochs = 2'])


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
