"""The domains of the values a user may bind through gin, checked where a value enters.

A configurable declares the domain of each parameter that has one beside its definition,
under `gin.configurable`:

  @gin.configurable(denylist=['model', 'images', 'seed'])
  @domains.checked(num_samples=domains.tuple_of(domains.POSITIVE_INT),
                   batch_size=domains.POSITIVE_INT)
  def information_suite(model, images, seed, num_samples=(1, 10, 100), batch_size=100):

A value outside its domain raises `errors.UserError` naming the binding, the value and what
is allowed (one line, exit status 2 from a command line):

  information_suite.num_samples = (0,): must be a non-empty tuple, each an integer >= 1

It is checked twice, so that nothing reaches a run unchecked: by `check_bindings` as soon
as the gin files and bindings are parsed, before any work (`utils.cli.parse_gin`, which
every command line calls), and by the declaration's wrapper whenever the configurable is
called (values that a reference computes, and calls from Python).

Like `errors`, this module sits at the bottom of the package's layers: every layer may use
it.
"""

import functools
import inspect
import math
import numbers

import gin
from gin import config as gin_config

from brokenelbo import errors

# Every declaration, by gin's full selector (`module.name`): (name, {parameter: Domain}).
_DECLARED = {}


class Domain:
  """A set of allowed values: `contains(value)`, and `str()` the words that describe it."""

  def __init__(self, description, contains):
    self.description = description
    self.contains = contains

  def __str__(self):
    return self.description

  def __repr__(self):
    return f'Domain({self.description!r})'


def _is_integer(value):
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value):
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _bounds_words(low, high, low_open, high_open):
  if low is not None and high is not None:
    return f' in {"(" if low_open else "["}{low:g}, {high:g}{")" if high_open else "]"}'
  if low is not None:
    return f' {">" if low_open else ">="} {low:g}'
  if high is not None:
    return f' {"<" if high_open else "<="} {high:g}'
  return ''


def _within(value, low, high, low_open, high_open):
  return ((low is None or (value > low if low_open else value >= low))
          and (high is None or (value < high if high_open else value <= high)))


def integer(low=None, high=None):
  """Integers (not `bool`) in [low, high]; None leaves a side open."""
  words = 'an integer' + _bounds_words(low, high, False, False)
  return Domain(words, lambda v: _is_integer(v) and _within(v, low, high, False, False))


def real(low=None, high=None, low_open=False, high_open=False):
  """Finite numbers (integers included, `bool` not) between `low` and `high`."""
  words = 'a finite number' + _bounds_words(low, high, low_open, high_open)
  return Domain(words, lambda v: _is_real(v) and _within(v, low, high, low_open, high_open))


def one_of(*choices):
  """Exactly one of `choices` (strings, None)."""
  return Domain('one of ' + ', '.join(repr(c) for c in choices), lambda v: v in choices
                and type(v) in {type(c) for c in choices})  # `True in (1,)` is true.


def optional(domain):
  """None, or a value of `domain`."""
  return Domain(f'None or {domain}', lambda v: v is None or domain.contains(v))


def tuple_of(domain, length=None):
  """A non-empty tuple or list (of exactly `length` items, if given) of values of `domain`."""
  size = f'a tuple of {length}' if length else 'a non-empty tuple'
  return Domain(f'{size}, each {domain}',
                lambda v: (isinstance(v, (tuple, list)) and len(v) >= 1
                           and (length is None or len(v) == length)
                           and all(domain.contains(x) for x in v)))


def either(*alternatives):
  """A value of any of the domains `alternatives`: `either(POSITIVE, tuple_of(POSITIVE))`
  takes one value or one value per member of a batch."""
  return Domain(' or '.join(str(a) for a in alternatives),
                lambda v: any(a.contains(v) for a in alternatives))


POSITIVE_INT = integer(1)
NON_NEGATIVE_INT = integer(0)
POSITIVE = real(0, low_open=True)
NON_NEGATIVE = real(0)
FRACTION = real(0, 1, low_open=True, high_open=True)
PROBABILITY = real(0, 1)
BOOL = Domain('True or False', lambda v: isinstance(v, bool))
NAME = Domain('a non-empty string', lambda v: isinstance(v, str) and bool(v))
IMAGE_SHAPE = tuple_of(POSITIVE_INT, length=3)
SEED = integer(0, 2**31 - 1)  # Stateless seeds are int32 pairs (`utils.seeds`).


def check(binding, value, domain):
  """Raises `errors.UserError` unless `value`, bound to `binding`, lies in `domain`."""
  if value is gin.REQUIRED or domain.contains(value):
    return
  raise errors.UserError(f'{binding} = {value!r}: must be {domain}')


def checked(**declared):
  """Declares the domains of some parameters of a function or class (its `__init__`), and
  checks them at every call; put it under `gin.configurable`."""

  def decorate(fn_or_cls):
    is_class = inspect.isclass(fn_or_cls)
    target = fn_or_cls.__init__ if is_class else fn_or_cls
    signature = inspect.signature(target)
    unknown = set(declared) - set(signature.parameters)
    if unknown:
      raise TypeError(f'{fn_or_cls.__name__} has no parameters {sorted(unknown)}')
    name = fn_or_cls.__name__

    @functools.wraps(target)
    def wrapper(*args, **kwargs):
      try:
        bound = signature.bind(*args, **kwargs)
      except TypeError:  # The call itself is wrong: let the function say so.
        return target(*args, **kwargs)
      bound.apply_defaults()
      for parameter, domain in declared.items():
        check(f'{name}.{parameter}', bound.arguments[parameter], domain)
      return target(*args, **kwargs)

    # gin reads a configurable's parameters and defaults with `inspect.getfullargspec`,
    # which does not follow `__wrapped__` but does read `__signature__`.
    wrapper.__signature__ = signature
    _DECLARED[f'{fn_or_cls.__module__}.{name}'] = (name, declared)
    if is_class:
      fn_or_cls.__init__ = wrapper
      fn_or_cls.domains = declared
      return fn_or_cls
    wrapper.domains = declared
    return wrapper

  return decorate


def declared(module_prefix=''):
  """{binding name (`information_suite.num_samples`): Domain} of every declaration so far
  in a module whose name starts with `module_prefix`."""
  return {f'{name}.{parameter}': domain
          for selector, (name, params) in _DECLARED.items() if selector.startswith(module_prefix)
          for parameter, domain in params.items()}


def _resolved(value, config):
  """`value` with gin macros replaced by their values; None where a reference to a
  configurable remains (checked when it is called)."""
  if isinstance(value, gin_config.ConfigurableReference):
    if value.configurable.name == 'macro' and value.config_key in config:
      return _resolved(config[value.config_key].get('value'), config)
    return None
  if isinstance(value, (tuple, list)):
    items = [_resolved(v, config) for v in value]
    return None if any(i is None and v is not None for i, v in zip(items, value)) else (
        type(value)(items))
  return value


def check_bindings():
  """Checks every parsed gin binding of a declared parameter (`checked`), before any work."""
  config = gin_config._CONFIG  # pylint: disable=protected-access
  for (scope, selector), values in list(config.items()):
    if selector not in _DECLARED:
      continue
    name, params = _DECLARED[selector]
    for parameter, value in values.items():
      if parameter not in params:
        continue
      resolved = _resolved(value, config)
      if resolved is not None or value is None:
        check(f'{scope + "/" if scope else ""}{name}.{parameter}', resolved, params[parameter])
