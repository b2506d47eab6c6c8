"""The package's structure: imports that point down its layers only, and short functions.

Every module of `brokenelbo` belongs to one layer; a module may import from its own layer
and the layers below, never from a layer above. The layers, bottom to top:

  errors, domains, utils -> data -> models -> statistics -> training -> evaluation -> visualize
  -> experiments -> the command lines, the gin registry (`configurables`) and the
  package's own `__init__`.

Each module is read with `ast` (nothing is imported), so imports inside functions count
as much as those at the top.
"""

import ast
import os

import pytest

import brokenelbo

PACKAGE_DIR = os.path.dirname(os.path.abspath(brokenelbo.__file__))
# Subpackages and modules directly under `brokenelbo/`, bottom to top; anything else
# directly under the package (the command lines, `configurables`, `__init__`) is the top.
LAYERS = (('errors', 'domains', 'utils', 'configs'), ('data',), ('models',), ('statistics',),
          ('training',), ('evaluation',), ('visualize',), ('experiments',))
TOP = len(LAYERS)


def layer_of(module):
  """The layer of `module`, a dotted name under `brokenelbo`."""
  parts = module.split('.')
  if len(parts) > 1:
    for index, names in enumerate(LAYERS):
      if parts[1] in names:
        return index
  return TOP


def _is_module(dotted):
  path = os.path.join(os.path.dirname(PACKAGE_DIR), *dotted.split('.'))
  return os.path.isfile(path + '.py') or os.path.isfile(os.path.join(path, '__init__.py'))


def imported_modules(source, module):
  """Every `brokenelbo` module that `source` (the text of `module`) imports: `from a
  import b` counts as `a.b` where that is a module, else as `a`."""
  is_package = False
  found = []
  for node in ast.walk(ast.parse(source)):
    if isinstance(node, ast.Import):
      found += [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:  # Relative: resolved against the importing module's package.
        package = module.split('.')[:len(module.split('.')) - node.level + is_package]
        base = '.'.join(package + ([base] if base else []))
      for alias in node.names:
        full = f'{base}.{alias.name}'
        found.append(full if _is_module(full) else base)
  return [name for name in found if name == 'brokenelbo' or name.startswith('brokenelbo.')]


def package_modules():
  """(dotted name, path) of every module of the package."""
  root = os.path.dirname(PACKAGE_DIR)
  for folder, _, names in os.walk(PACKAGE_DIR):
    for name in sorted(names):
      if name.endswith('.py'):
        path = os.path.join(folder, name)
        dotted = os.path.relpath(path, root)[:-len('.py')].replace(os.sep, '.')
        yield dotted.removesuffix('.__init__'), path


def upward_imports(modules):
  """`'a imports b (layer i -> j)'` for each import of `modules` ((name, source) pairs)
  that points up."""
  found = []
  for module, source in modules:
    for target in imported_modules(source, module):
      if layer_of(target) > layer_of(module):
        found.append(f'{module} imports {target} '
                     f'(layer {layer_of(module)} -> {layer_of(target)})')
  return found


def test_every_import_points_down():
  modules = [(name, open(path).read()) for name, path in package_modules()]
  assert len(modules) > 50
  assert upward_imports(modules) == []


@pytest.mark.parametrize('module, source, expected', [
    ('brokenelbo.data.mnist', 'from brokenelbo.training import trainer',
     ['brokenelbo.data.mnist imports brokenelbo.training.trainer (layer 1 -> 4)']),
    ('brokenelbo.models.vae', 'def f():\n  import brokenelbo.statistics.elbo',
     ['brokenelbo.models.vae imports brokenelbo.statistics.elbo (layer 2 -> 3)']),
    ('brokenelbo.utils.cli', 'from brokenelbo import configurables',
     ['brokenelbo.utils.cli imports brokenelbo.configurables (layer 0 -> 8)']),
    ('brokenelbo.evaluation.suite', 'from ..visualize import grids',
     ['brokenelbo.evaluation.suite imports brokenelbo.visualize.grids (layer 5 -> 6)']),
    # Down, or within a layer: allowed.
    ('brokenelbo.training.trainer', 'from brokenelbo.statistics import elbo\n'
     'from brokenelbo.training import losses\nfrom brokenelbo import errors', []),
    ('brokenelbo.train', 'from brokenelbo import configurables', []),
])
def test_an_upward_import_is_named(module, source, expected):
  assert upward_imports([(module, source)]) == expected


def test_no_function_is_over_60_lines():
  long = []
  for name, path in package_modules():
    for node in ast.walk(ast.parse(open(path).read())):
      if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        length = node.end_lineno - node.lineno + 1
        if length > 60:
          long.append(f'{name}.{node.name}: {length} lines')
  assert long == []
