"""One way to restore a run: its model from its `config.gin`, its weights from its newest
checkpoint that reads back, and its settings.

Every tool that reads a finished run (`evaluate`, `plot`'s Figure 4, `bench`, the sweep's
settings) goes through `restore_run` or `run_settings`. The run's settings (dataset, seed,
batch, ...) are those of its `config.gin` on top of `train`'s own defaults, so no default is
restated anywhere else.

Both parse a config into gin's global config, which must hold no bindings before (they
never clear the caller's config): a command line calls `gin.clear_config()` between runs.
The configurables a run's config names must be registered first (`brokenelbo.configurables`,
which the command lines import); from a notebook, `brokenelbo.load_run` does both.
"""

from typing import Any, Dict, NamedTuple

import tensorflow as tf

from brokenelbo import errors
from brokenelbo.training import checkpoints
from brokenelbo.training import trainer
from brokenelbo.utils import cli
from brokenelbo.utils import files
from brokenelbo.utils import seeds


class RestoredRun(NamedTuple):
  """A restored run.

  Attributes:
    model: the `vae.VAE`, with the checkpoint's weights.
    step: Python `int`, the checkpoint's step.
    settings: `dict`, every argument of `train` (its defaults, then the run's bindings),
      with gin references resolved: `settings['dataset']('test')` gives the run's test
      images, `settings['seed']` its seed.
  """
  model: Any
  step: int
  settings: Dict[str, Any]

  @property
  def steps_per_epoch(self):
    """Training steps per epoch of the run."""
    settings = self.settings
    num_train = settings['dataset']('train')[:settings['max_train_examples']].shape[0]
    return num_train // settings['batch_size']


def train_settings():
  """Every argument of `train` under the current gin config: its defaults, then bindings."""
  return cli.configured_arguments(trainer.train)


def run_settings(gin_files, gin_bindings=()):
  """Parses `gin_files` and `gin_bindings` into gin's (empty) config; returns
  `train_settings()`. Bad bindings raise `errors.UserError` here."""
  cli.require_empty_gin_config('run_settings')
  cli.parse_gin(list(gin_files), list(gin_bindings))
  return train_settings()


def restore_run(model_dir, gin_bindings=()):
  """Rebuilds a run's model from `model_dir/config.gin` and restores its latest checkpoint.

  Args:
    model_dir: Python `str`, a run directory written by `train`.
    gin_bindings: Python `list` of `str`, bindings applied after the run's config (for
      the evaluation's own configurables, e.g. `evaluate_run.num_z_samples = 10`).

  Returns:
    `RestoredRun`.

  Raises:
    UserError: if `model_dir` holds no run or no checkpoint, or a binding is bad.
    RunFailed: if no checkpoint of the run reads back.
    ValueError: if gin's global config holds bindings already.
  """
  config_path = files.run_config(model_dir)
  if not checkpoints.checkpoint_steps(model_dir):
    raise errors.UserError(f'{model_dir} holds no checkpoint yet')
  settings = run_settings([config_path], gin_bindings)
  model = settings['model']()
  # One call builds the variables, on an example of the run's own data (images or vectors).
  example_shape = settings['dataset']('test').shape[1:]
  model.rate_distortion(tf.zeros([1, *example_shape]), seeds.step_seed(settings['seed'], 0))
  step = tf.Variable(0, dtype=tf.int64)
  # A reader: a damaged checkpoint is skipped, not moved (training moves it aside).
  checkpoints.restore_newest(dict(model=model, step=step), model_dir, owner=False,
                             partial=True)
  return RestoredRun(model, int(step), settings)
