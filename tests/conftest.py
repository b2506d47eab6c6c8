"""Shared pytest set-up: quiet TensorFlow logs, a clean gin config for every test, and the
slowest modules first."""

import importlib.util
import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import gin  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from brokenelbo.utils import configurables  # pylint: disable=unused-import,g-import-not-at-top


# The modules that take longest (real processes interrupted 10 times; 12 families
# trained). pytest-xdist hands out modules in collection order: these go first, so that the
# two workers finish together instead of one of them ending alone with them.
SLOW_MODULES = ('test_reliability.py', 'test_train.py')


def pytest_collection_modifyitems(items):
  items.sort(key=lambda item: item.path.name not in SLOW_MODULES)  # Stable otherwise.


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
