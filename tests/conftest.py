"""Shared pytest fixtures: quiet TensorFlow logs, no Grappler rewrites and a lazier garbage
collector in the test processes, and a clean gin config for every test; the command
processes of `commands`, `in_one_process` and `python_c`, forked by one process per pytest
process that imported TensorFlow once (`Zygote`)."""

import gc
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# Two workers share two cores: each test process, and every process it starts, runs
# TensorFlow on one intra-op and one inter-op thread instead of spinning threads that wait
# for the other worker's core (the suite: 409 s against 417 s on a 2-core Xeon).
os.environ.setdefault('TF_NUM_INTRAOP_THREADS', '1')
os.environ.setdefault('TF_NUM_INTEROP_THREADS', '1')

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
  return (own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime +
          (_ZYGOTE.cpu_seconds() if _ZYGOTE else 0.))


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
  """Tests marked `first` (the longest modules and tests: the kill-and-resume test, the
  sweep's, the faults', the families' smoke runs) run before the others, in collection
  order, so that the two workers share the long ones and the short ones fill in at the end,
  instead of one worker finishing a long module alone."""
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


# One process runs a command line's `main` once per list of arguments, as `python -m
# brokenelbo.<module>` would (`cli.start`), printing one JSON line [exit status, stderr] for
# each: a failure that comes before any work costs a fraction of a second instead of a
# process start. `generate`, Python source run first, may set `argument_lists` itself (and
# print what it generated).
_DRIVER = """
import contextlib, io, json, sys
import gin
from absl import flags
from brokenelbo import {module} as command
from brokenelbo.utils import cli
spec = json.loads(sys.stdin.read())
argument_lists = spec['argument_lists']
exec(spec['generate'])
getattr(command, 'define_flags', lambda: None)()  # Commands that define them when run.
for args in argument_lists:
  flags.FLAGS.unparse_flags()
  sys.argv = ['{module}', *args]
  stderr = io.StringIO()
  with contextlib.redirect_stderr(stderr):
    try:
      cli.start(command.main)
      status = 0
    except SystemExit as e:
      status = e.code or 0  # absl's `sys.exit(main(argv))` of a main returning None.
  gin.clear_config()
  print('CASE', json.dumps([status, stderr.getvalue()]), flush=True)
"""
# TensorFlow's and absl's own log lines, which are not the program's.
NATIVE_LOG = ('WARNING: All log messages before absl', 'To enable the following instructions',
              'I0000', 'W0000', 'E0000')


def own_lines(stderr):
  """The program's own non-empty lines of `stderr`."""
  return [line for line in stderr.splitlines()
          if line.strip() and not line.startswith(NATIVE_LOG)
          and not (len(line) > 5 and line[0] in 'IWEF' and line[1:5].isdigit())]


def _in_one_process(module, argument_lists=(), generate='', timeout=600):
  spec = dict(argument_lists=[list(a) for a in argument_lists], generate=generate)
  result = _zygote().run(_DRIVER.format(module=module), json.dumps(spec), timeout)
  assert result.returncode == 0, result.stderr[-3000:]
  outcomes = [json.loads(line[len('CASE '):]) for line in result.stdout.splitlines()
              if line.startswith('CASE ')]
  return [(status, own_lines(stderr)) for status, stderr in outcomes], result.stdout


# A long-lived process that runs a command line's `main` once per request, as `python -m
# brokenelbo.<module>` would: requests come as JSON lines on its own copy of stdin (its fd 0
# is /dev/null, which the processes it starts inherit), and for each it answers one JSON
# line [exit status, stdout, stderr] on its own copy of stdout. File descriptors 1 and 2
# point at temporary files during a request, so that absl's and TensorFlow's logs are
# caught as from a process of its own.
_SERVER = """
import json, os, sys, tempfile
import gin
from absl import flags
from brokenelbo import {module} as command
from brokenelbo.utils import cli
getattr(command, 'define_flags', lambda: None)()  # Commands that define them when run.
requests, reply = os.fdopen(os.dup(0)), os.fdopen(os.dup(1), 'w')
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
for request in requests:
  flags.FLAGS.unparse_flags()
  sys.argv = ['brokenelbo.{module}', *json.loads(request)]
  with tempfile.TemporaryFile('w+') as out, tempfile.TemporaryFile('w+') as err:
    saved = os.dup(1), os.dup(2)
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    try:
      cli.start(command.main)
      status = 0
    except SystemExit as e:
      status = e.code or 0  # absl's `sys.exit(main(argv))` of a main returning None.
    finally:
      sys.stdout.flush()
      sys.stderr.flush()
      for fd, copy in zip((1, 2), saved):
        os.dup2(copy, fd)
        os.close(copy)
    gin.clear_config()
    out.seek(0)
    err.seek(0)
    reply.write(json.dumps([status, out.read(), err.read()]) + '\\n')
    reply.flush()
"""


# The processes of `commands`, `in_one_process` and `python_c` are forked from one process
# per pytest process (a zygote), which imports TensorFlow, gin, absl and the package's
# configurables once, and never runs an op (so no TensorFlow thread pool exists to be lost
# in the fork): each forked process then runs its Python source as `python -c SOURCE`
# would, from the repository, with the requesting process's environment of the moment
# (TF_CPP_MIN_LOG_LEVEL=2), imports its command's module itself (so that its flags are its
# own) and ends with its own exit status. A process start and
# TensorFlow's import (about 6 CPU-s) is paid once per pytest worker instead of once per
# server and per `in_one_process`. The zygote reaps what it forked; its own CPU time and
# its reaped children's count in `_cpu_seconds` while it lives.
_ZYGOTE_SOURCE = r"""
import atexit, io, json, os, resource, signal, sys, traceback, types
import brokenelbo  # First: the package keeps Keras 3 from loading.
import gin
from absl import flags
import tensorflow
from brokenelbo import configurables
from brokenelbo.utils import cli
requests, reply = os.fdopen(os.dup(0)), os.fdopen(os.dup(1), 'w')
os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)


def child(request):
  status = 1
  try:
    requests.close()
    reply.close()
    signal.alarm(request['timeout'])
    os.environ.clear()  # The requester's environment at the request, as `subprocess`'s.
    os.environ.update(request['env'])
    os.dup2(os.open(request['stdin'], os.O_RDONLY), 0)
    os.dup2(os.open(request['stdout'], os.O_WRONLY), 1)
    os.dup2(os.open(request['stderr'], os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
    sys.stdin = io.TextIOWrapper(open(0, 'rb', closefd=False))
    sys.stdout = io.TextIOWrapper(open(1, 'wb', closefd=False))
    sys.stderr = io.TextIOWrapper(open(2, 'wb', closefd=False), errors='backslashreplace',
                                  line_buffering=True)
    sys.argv = ['-c']
    main = sys.modules['__main__'] = types.ModuleType('__main__')  # As `python -c`'s.
    try:
      exec(compile(request['source'], '<string>', 'exec'), main.__dict__)
      status = 0
    except SystemExit as e:
      if e.code is None or isinstance(e.code, int):
        status = e.code or 0
      else:
        print(e.code, file=sys.stderr)
    except BaseException:
      traceback.print_exc()
    atexit._run_exitfuncs()
  finally:
    try:
      sys.stdout.flush()
      sys.stderr.flush()
    finally:
      os._exit(status)


for line in requests:
  request = json.loads(line)
  if request['kind'] == 'start':
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
      child(request)
    answer = pid
  elif request['kind'] == 'wait':
    answer = os.waitstatus_to_exitcode(os.waitpid(request['pid'], 0)[1])
  else:  # 'cpu'
    own, children = (resource.getrusage(w) for w in (resource.RUSAGE_SELF,
                                                       resource.RUSAGE_CHILDREN))
    answer = own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
  reply.write(json.dumps(answer) + '\n')
  reply.flush()
"""


def _child_environment():
  """The environment of a forked process: this process's now, TensorFlow's logs quiet."""
  return dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')


# A server that has not ended this long after it started (a module's tests take minutes)
# is hung: SIGALRM ends it, and the test waiting for its answer fails instead of hanging.
_SERVER_TIMEOUT = 1800


class _Forked:
  """A process forked by the zygote: its stdin and stdout (FIFOs), and `wait()`."""

  def __init__(self, zygote, pid, stdin, stdout):
    self._zygote, self.pid, self.stdin, self.stdout = zygote, pid, stdin, stdout

  def wait(self):
    return self._zygote.ask(kind='wait', pid=self.pid)


class Zygote:
  """One process that imported TensorFlow, forking the test's command processes."""

  def __init__(self, tmp_dir):
    self._tmp_dir = tmp_dir
    self._count = 0
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(tmp_dir, 'zygote.log'), 'w') as log:
      self._process = subprocess.Popen(
          [sys.executable, '-c', _ZYGOTE_SOURCE], cwd=repo, text=True,
          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2'))

  def ask(self, **request):
    self._process.stdin.write(json.dumps(request) + '\n')
    self._process.stdin.flush()
    answer = self._process.stdout.readline()
    if not answer:
      self._process.wait()
      with open(os.path.join(self._tmp_dir, 'zygote.log')) as f:
        raise AssertionError(f'the zygote ended ({self._process.returncode}):\n'
                             f'{f.read()[-3000:]}')
    return json.loads(answer)

  def _paths(self, prefix):
    self._count += 1
    return [f'{prefix}.{self._count}.{name}' for name in ('in', 'out', 'err')]

  def start(self, source, stderr, prefix, timeout=0):
    """Forks a process running `source`, its stdin and stdout FIFOs to this process."""
    stdin, stdout, _ = self._paths(prefix)
    os.mkfifo(stdin)
    os.mkfifo(stdout)
    pid = self.ask(kind='start', source=source, stdin=stdin, stdout=stdout, stderr=stderr,
                   timeout=timeout, env=_child_environment())
    # The order in which the child opens them.
    return _Forked(self, pid, open(stdin, 'w'), open(stdout))

  def run(self, source, input_text, timeout):
    """As `subprocess.run([python, '-c', source], input=input_text, text=True,
    capture_output=True)` would."""
    stdin, stdout, stderr = self._paths(os.path.join(self._tmp_dir, 'run'))
    with open(stdin, 'w') as f:
      f.write(input_text)
    open(stdout, 'w').close()
    pid = self.ask(kind='start', source=source, stdin=stdin, stdout=stdout, stderr=stderr,
                   timeout=timeout, env=_child_environment())
    returncode = self.ask(kind='wait', pid=pid)
    with open(stdout) as out, open(stderr) as err:
      result = subprocess.CompletedProcess(['-c', source], returncode, out.read(), err.read())
    for path in (stdin, stdout, stderr):
      os.remove(path)
    return result

  def cpu_seconds(self):
    """The CPU time of the zygote and of the processes it reaped so far (0 once it ended:
    the test that uses it fails with its log)."""
    if self._process.poll() is not None:
      return 0.
    return self.ask(kind='cpu')

  def close(self):
    self._process.stdin.close()
    self._process.wait()
    self._process.stdout.close()


_ZYGOTE = None


def _zygote():
  global _ZYGOTE
  if _ZYGOTE is None:
    _ZYGOTE = Zygote(tempfile.mkdtemp(prefix='brokenelbo_zygote_'))
  return _ZYGOTE


def pytest_unconfigure(config):
  """The zygote ends with the pytest process (its CPU time then counts as a child's)."""
  del config
  global _ZYGOTE
  if _ZYGOTE is not None:
    zygote, _ZYGOTE = _ZYGOTE, None
    zygote.close()
    shutil.rmtree(zygote._tmp_dir, ignore_errors=True)  # pylint: disable=protected-access


class CommandServer:
  """Runs `python -m brokenelbo.<module> ARGS` as one long-lived process per module would:
  the same exit status, stdout and stderr, without a process start and TensorFlow's import
  for each command (about 5 CPU-s). Each command still runs alone, with gin's config
  cleared after it; the processes a command starts (training, evaluation) are its own.
  The server of each module is forked by the zygote (`Zygote`)."""

  def __init__(self, tmp_dir):
    self._tmp_dir = tmp_dir
    self._servers = {}

  def __call__(self, module, *args):
    """Returns a `subprocess.CompletedProcess` as `subprocess.run(..., text=True,
    capture_output=True)` of the command would."""
    log = os.path.join(self._tmp_dir, f'{module}_server.log')
    if module not in self._servers:
      self._servers[module] = _zygote().start(_SERVER.format(module=module), log,
                                              os.path.join(self._tmp_dir, module),
                                              timeout=_SERVER_TIMEOUT)
    server = self._servers[module]
    server.stdin.write(json.dumps(list(args)) + '\n')
    server.stdin.flush()
    answer = server.stdout.readline()
    if not answer:
      returncode = server.wait()
      with open(log) as f:
        raise AssertionError(f'the {module} server ended ({returncode}):\n'
                             f'{f.read()[-3000:]}')
    status, stdout, stderr = json.loads(answer)
    return subprocess.CompletedProcess(['-m', f'brokenelbo.{module}', *args], status, stdout,
                                       stderr)

  def close(self):
    for server in self._servers.values():
      server.stdin.close()
      server.wait()
      server.stdout.close()


@pytest.fixture(scope='module')
def commands(tmp_path_factory):
  """`commands(module, *args)`: `python -m brokenelbo.<module> *args`, run by a server
  process per module that lives as long as the test module (`CommandServer`)."""
  server = CommandServer(str(tmp_path_factory.mktemp('commands')))
  yield server
  server.close()


@pytest.fixture(scope='session')
def python_c():
  """`python_c(source, input_text='', timeout=600)`: `subprocess.run([python, '-c', source],
  input=input_text, text=True, capture_output=True)` from the repository, as a process
  forked by the zygote (`Zygote`), where TensorFlow is imported and not yet initialised."""
  return lambda source, input_text='', timeout=600: _zygote().run(source, input_text, timeout)


@pytest.fixture
def in_one_process():
  """`in_one_process(module, argument_lists)`: runs `python -m brokenelbo.<module>`'s
  `main` on each list of arguments, all in one process (forked by the zygote, `Zygote`);
  returns ([(exit status, the program's own stderr lines)], the process's stdout)."""
  return _in_one_process
