"""The domains of bindable values (`brokenelbo.domains`), and a test generated from them.

The generated test takes every parameter of the gin registry that declares a domain, binds
each value of a fixed pool that the domain rejects (0, -1, an infinity, an empty tuple, a
string, a bool, ...) through the real `train` command line (`toy` for the toy
experiment's), and requires exit status 2 with one line naming the binding, before
anything is written. The cases of a command run in one process (the check runs as the
bindings are parsed, before TensorFlow does any work), which calls the command's `main`
once per case as `python -m brokenelbo.train` would. Run it with `-s` to see how many
parameters and values it tried.
"""

import inspect
import json
import math
import os
import shutil
import sys

import gin
import numpy as np
import pytest

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import domains
from brokenelbo import errors
from brokenelbo.experiments import toy  # pylint: disable=unused-import
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Values as a user would write them in a binding (gin cannot spell NaN; 1e999 is inf).
POOL = ('0', '-1', '0.5', '1e999', '-1e999', '()', "'x'", 'True', '(0,)', '(-3, 10)', '2.5',
        "('nope',)")
# Run in the command's process (`conftest.in_one_process`) before its cases: the declared
# bindings of the modules under `prefix` as that command registers them, each with every
# pool value outside its domain, printed, and a case each: the command's arguments, then
# that binding.
GENERATE = """
from brokenelbo import configurables
from brokenelbo import domains
for name in {imports!r}:
  __import__(name)
cases = [(binding, text) for binding, domain in sorted(domains.declared({prefix!r}).items())
         for text in {pool!r} if not domain.contains(eval(text))]
print('CASES', json.dumps(cases), flush=True)
argument_lists = [[*{args!r}, f'--gin_bindings={{b}} = {{t}}'] for b, t in cases]
"""


def _generated_cases(in_one_process, module, prefix, args, imports=()):
  """[(binding, value text, status, stderr lines)] of `module`'s generated cases."""
  outcomes, stdout = in_one_process(module, generate=GENERATE.format(
      imports=list(imports), prefix=prefix, pool=POOL, args=list(args)))
  cases = json.loads(stdout.split('CASES ', 1)[1].splitlines()[0])
  assert cases and len(outcomes) == len(cases), stdout[-3000:]
  return [(binding, text, status, lines)
          for (binding, text), (status, lines) in zip(cases, outcomes)]


def test_every_bad_value_of_every_declared_binding_exits_2_with_one_line(tmp_path,
                                                                        in_one_process):
  model_dir, output_dir = tmp_path / 'never_written', tmp_path / 'toy_never_written'
  # `train` registers every configurable but the toy experiment's, which `toy` does.
  found = _generated_cases(in_one_process, 'train', 'brokenelbo.', [
      '--gin_file=configs/---.gin', '--gin_file=configs/smoke.gin', f'--model_dir={model_dir}'])
  found += _generated_cases(in_one_process, 'toy', 'brokenelbo.experiments.toy', [
      '--gin_file=configs/toy.gin', f'--output_dir={output_dir}'],
      imports=['brokenelbo.experiments.toy'])
  wrong = [(binding, text, status, lines) for binding, text, status, lines in found
           if status != errors.EXIT_USER_ERROR or len(lines) != 1
           or not lines[0].startswith(f'error: {binding} = ') or 'must be' not in lines[0]]
  assert not wrong, wrong[:5]
  assert not model_dir.exists() and not output_dir.exists()
  parameters = [binding for binding, *_ in found]
  print(f'{len(set(parameters))} parameters, {len(found)} bad values: each exit 2, one line')
  # Every declared parameter of the package, each with at least two values outside it.
  assert set(parameters) == set(domains.declared('brokenelbo.'))
  assert min(parameters.count(p) for p in set(parameters)) >= 2


def test_evaluate_refuses_bad_suite_values_before_touching_the_run(tmp_path, in_one_process):
  # A committed run, copied: `evaluate` must neither evaluate it nor change it.
  model_dir = tmp_path / 'run'
  shutil.copytree(os.path.join(REPO, 'results/mnist_rd/-+v/beta=1_anneal=0_seed=0'), model_dir)
  before = {p: (model_dir / p).read_bytes() for p in os.listdir(model_dir)}
  values = [('information_suite.num_samples', '(0,)'), ('information_suite.num_samples', '()'),
            ('information_suite.num_samples', '(-3, 10)'),
            ('information_suite.likelihood_examples', '0'),
            ('information_suite.likelihood_examples', '-5'), ('evaluate_run.batch_size', '0')]
  outcomes, _ = in_one_process('evaluate', [[f'--model_dir={model_dir}',
                                              f'--gin_bindings={binding} = {text}']
                                             for binding, text in values])
  for (binding, text), (status, lines) in zip(values, outcomes):
    assert status == errors.EXIT_USER_ERROR and len(lines) == 1, (binding, text, lines)
    assert lines[0].startswith(f'error: {binding} = {text}: must be '), lines
  assert {p: (model_dir / p).read_bytes() for p in os.listdir(model_dir)} == before


def test_every_default_lies_in_its_domain():
  configurables_found = _declared_configurables()
  assert len(configurables_found) >= 20
  for fn_or_cls in configurables_found:
    target = fn_or_cls.__init__ if isinstance(fn_or_cls, type) else fn_or_cls
    for name, parameter in inspect.signature(target).parameters.items():
      domain = fn_or_cls.domains.get(name)
      if domain and parameter.default not in (inspect.Parameter.empty, gin.REQUIRED):
        assert domain.contains(parameter.default), (fn_or_cls, name, parameter.default)


def _declared_configurables():
  found = []
  for module in list(sys.modules.values()):
    if getattr(module, '__name__', '').startswith('brokenelbo.'):
      for value in vars(module).values():
        if isinstance(getattr(value, 'domains', None), dict) and value not in found:
          found.append(value)
  return found


@pytest.mark.parametrize('domain, inside, outside', [
    (domains.POSITIVE_INT, [1, 7, np.int64(3)], [0, -1, 1.0, True, '1', None]),
    (domains.NON_NEGATIVE_INT, [0, 5], [-1, 0.5, False]),
    (domains.POSITIVE, [1e-9, 2, 3.5], [0, -1., math.inf, math.nan, True, '1']),
    (domains.NON_NEGATIVE, [0, 0., 4.5], [-1e-9, math.inf, math.nan]),
    (domains.FRACTION, [0.5, 1e-6], [0., 1., math.nan]),
    (domains.PROBABILITY, [0., 1., 0.3], [-0.1, 1.1]),
    (domains.tuple_of(domains.POSITIVE_INT), [(1,), [1, 10, 100]], [(), (0,), (-3, 10), 5, '1']),
    (domains.IMAGE_SHAPE, [(28, 28, 1)], [(28, 28), (28, 28, 0), (28, 28, 1, 1)]),
    (domains.either(domains.POSITIVE, domains.tuple_of(domains.POSITIVE)),
     [0.5, 2, (0.5,), [1, 2.5]], [0, (), (0.5, 0.), ((1,),), '1', None]),
    (domains.one_of(None, 'a'), [None, 'a'], ['b', 0, False, '']),
    (domains.optional(domains.POSITIVE_INT), [None, 3], [0, 'x']),
    (domains.BOOL, [True, False], [0, 1, 'True', None]),
])
def test_domains_hold_exactly_their_values(domain, inside, outside):
  assert all(domain.contains(v) for v in inside), domain
  assert not any(domain.contains(v) for v in outside), domain


@gin.configurable
@domains.checked(count=domains.POSITIVE_INT)
class _Counted:
  """A configurable class with a declared domain (a test double)."""

  def __init__(self, count=3, name=None):
    self.count, self.name = count, name


def test_checked_keeps_gin_s_view_of_the_signature_and_checks_every_call():
  gin.clear_config()
  # Unknown parameters are still gin's errors; defaults still reach the operative config.
  with pytest.raises(errors.UserError, match="doesn't have a parameter named 'cuont'"):
    cli.parse_gin([], ['_Counted.cuont = 2'])
  cli.parse_gin([], ['_Counted.count = 2'])
  assert _Counted().count == 2
  assert '_Counted.name = None' in gin.operative_config_str()
  # At parse time, scoped or not, and through a macro.
  for bindings, named in ((['_Counted.count = 0'], '_Counted.count = 0'),
                          (['s/_Counted.count = -1'], 's/_Counted.count = -1'),
                          (['N = 0', '_Counted.count = %N'], '_Counted.count = 0')):
    gin.clear_config()
    with pytest.raises(errors.UserError) as info:
      cli.parse_gin([], bindings)
    assert str(info.value) == f'{named}: must be an integer >= 1'
  # At call time: from Python, and for a value bound past the parser.
  gin.clear_config()
  with pytest.raises(errors.UserError, match=r'_Counted\.count = nan: must be'):
    _Counted(count=math.nan)
  gin.bind_parameter('_Counted.count', 0)
  with pytest.raises(errors.UserError, match=r'_Counted\.count = 0: must be'):
    _Counted()
  gin.clear_config()


def test_a_gin_file_that_does_not_parse_names_the_file_and_line(tmp_path):
  path = tmp_path / 'cut.gin'
  path.write_text('train.batch_size = 4\ntrain.epochs = (\n')
  with pytest.raises(errors.UserError) as info:
    cli.parse_gin([str(path)], [])
  assert str(info.value).startswith(f'invalid gin configuration in {path}, line 3: EOF')
  gin.clear_config()
