"""Shared pytest fixtures: quiet TensorFlow logs and a clean gin config for every test."""

import importlib.util
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import gin  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from brokenelbo.utils import configurables  # pylint: disable=unused-import,g-import-not-at-top


def pytest_collection_modifyitems(items):
  """Tests marked `first` (the two fault-injection tests, each a few minutes of process
  starts) run before the others, so that the two workers start them together instead of
  one worker finishing the suite alone."""
  items.sort(key=lambda item: item.get_closest_marker('first') is None)


@pytest.fixture(autouse=True)
def clear_gin_config():
  """Every test starts and ends with no gin bindings."""
  gin.clear_config()
  yield
  gin.clear_config()


@pytest.fixture
def load_script():
  """`load_script(name)` imports `scripts/<name>.py` (not a package) as a module."""
  scripts = os.path.join(os.path.dirname(__file__), os.pardir, 'scripts')

  def load(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(scripts, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module

  return load
