"""Shared pytest fixtures: quiet TensorFlow logs, no Grappler rewrites and a lazier garbage
collector in the test processes, and a clean gin config for every test."""

import gc
import importlib.util
import os
import resource

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

# Before TensorFlow: the package keeps Keras 3 from loading (`brokenelbo/__init__.py`).
import brokenelbo  # pylint: disable=unused-import,g-import-not-at-top
import gin  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

from brokenelbo import configurables  # pylint: disable=unused-import,g-import-not-at-top

# In the test processes (not the commands they start), functions run without Grappler's
# graph rewrites: a test traces many small graphs and runs each a few times, where the
# rewrites cost more than they save (a smoke run of `++v` takes a quarter less CPU time).
# The rewrites keep a graph's meaning, so every numerical check holds either way.
tf.config.optimizer.set_experimental_options({'disable_meta_optimizer': True})
# Tracing allocates Python objects by the hundred thousand: with the collector's default
# thresholds a `---` smoke run collects 430 times (39 of them the older generations, 2 of
# them everything). With these, the in-process smoke runs of the 12 families take about 8%
# less CPU time (`pytest tests/test_train.py -n 0 -k TrainTest`, two runs each: 124
# against 136 CPU-s).
gc.set_threshold(50_000, 20, 20)


def pytest_addoption(parser):
  parser.addoption('--cpu_times', type=int, default=0, metavar='N',
                   help='After the run, list the N tests that took the most CPU time (this '
                        'process\'s and its waited-for children\'s, which other jobs on the '
                        'machine barely change), and the total per module; under pytest-xdist '
                        'the workers send their counts to the controller, which prints them.')


def _cpu_seconds():
  own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                     resource.RUSAGE_CHILDREN))
  return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


_CPU_TIMES = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
  """Charges each test its CPU time, set-up (module fixtures included) and teardown too."""
  del nextitem
  start = _cpu_seconds()
  yield
  _CPU_TIMES[item.nodeid] = _cpu_seconds() - start


def pytest_sessionfinish(session):
  """A pytest-xdist worker hands its counts to the controller (`pytest_testnodedown`)."""
  workeroutput = getattr(session.config, 'workeroutput', None)
  if workeroutput is not None:
    workeroutput['cpu_times'] = dict(_CPU_TIMES)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
  """The pytest-xdist controller collects a finished worker's counts."""
  del error
  _CPU_TIMES.update(getattr(node, 'workeroutput', {}).get('cpu_times', {}))


def pytest_terminal_summary(terminalreporter, config):
  top = config.getoption('cpu_times')
  if not top or not _CPU_TIMES:
    return
  write = terminalreporter.write_line
  modules = {}
  for nodeid, seconds in _CPU_TIMES.items():
    module = nodeid.split('::')[0]
    modules[module] = modules.get(module, 0.) + seconds
  write(f'CPU seconds: {sum(_CPU_TIMES.values()):.0f} in all, {len(_CPU_TIMES)} tests')
  for module, seconds in sorted(modules.items(), key=lambda kv: -kv[1]):
    write(f'{seconds:8.1f}  {module}')
  write(f'The {top} tests with the most CPU seconds:')
  for nodeid, seconds in sorted(_CPU_TIMES.items(), key=lambda kv: -kv[1])[:top]:
    write(f'{seconds:8.1f}  {nodeid}')


def pytest_collection_modifyitems(items):
  """Tests marked `first` (the kill-and-resume test, about a minute of process starts) run
  before the others, so that one worker runs it while the other starts on the rest,
  instead of one worker finishing the suite alone."""
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
