"""Files a tool reads and writes: crash-safe writes that leave no debris, strict JSON,
guarded JSON and CSV readers, writable outputs; and the file that makes a folder a run
(`run_config`).

A file written by `write_atomic` is either its old content or its new content, never cut;
a write that fails (a full disk) removes its temporary file. JSON is strict (RFC 8259): a
value that is not a finite number is written as `null`, never as `NaN`.

Every JSON or CSV file a user can hand a command is read by `read_json` (checked against a
schema, `check_schema`) or `read_csv` (and its cells by `csv_number`): a file that cannot be
read, is cut short or garbled, or holds the wrong shape is a `UserError` of one line that
names the file and the place (line and column, key, CSV column). Every output a command
writes is checked before any work (`check_can_create_dir` for a folder,
`check_can_write_file` for a file). The module does not import TensorFlow, so that a
command line can check its inputs and outputs in a second, before TensorFlow loads.
"""

import csv
import errno
import json
import math
import os

from brokenelbo import errors


def write_atomic(path, text):
  """Writes `text` (`str` or `bytes`) to `path` through a temporary file and a rename;
  makes the folder.

  Raises:
    OSError: if the write fails; the temporary file is removed and `path` is unchanged.
  """
  folder = os.path.dirname(path)
  tmp = path + '.tmp'
  try:
    if folder:
      os.makedirs(folder, exist_ok=True)
    with open(tmp, 'wb' if isinstance(text, bytes) else 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except OSError:
    try:
      os.remove(tmp)
    except OSError:
      pass  # Never written, or the folder itself is gone or unreadable.
    raise


def _finite_or_none(value):
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite_or_none(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite_or_none(v) for v in value]
  return value


def to_json(value, **kwargs):
  """`json.dumps(value, **kwargs)` in strict JSON: non-finite floats become `null`."""
  return json.dumps(_finite_or_none(value), allow_nan=False, **kwargs)


def run_config(model_dir):
  """The path of `model_dir/config.gin`, the file that makes a folder a run.

  Raises:
    UserError: if there is none.
  """
  path = os.path.join(model_dir, 'config.gin')
  if not os.path.isfile(path):
    raise errors.UserError(f'{model_dir} holds no run (no config.gin)')
  return path


def check_writable_dir(path, what):
  """Creates the folder `path` if needed and checks that a file can be written in it.

  Raises:
    UserError: naming `what` (e.g. '--output_dir') if `path` is a file, is under a file, is
      on a read-only or full file system, or is not writable; the probe file never stays.
  """
  probe = os.path.join(path, '.write_test')
  try:
    if os.path.exists(path) and not os.path.isdir(path):
      raise OSError(errno.ENOTDIR, 'not a directory', path)
    os.makedirs(path, exist_ok=True)
    try:
      with open(probe, 'w') as f:
        f.write('ok')
    finally:
      if os.path.exists(probe):
        os.remove(probe)
  except OSError as e:
    raise errors.UserError(f'{what} {path} is not writable: {e.strerror or e}') from None


def check_can_create_dir(path, what):
  """Checks, creating nothing, that the folder `path` exists and is writable or can be made.

  The nearest existing folder on the way to `path` must be a folder that this user may
  write in (`os.access`, which also reports a read-only mount). A command line calls this
  before loading TensorFlow, so that a mistyped output path fails in a second; a full disk
  shows only when something is written (`check_writable_dir`, `write_atomic`).

  Raises:
    UserError: naming `what`, if `path` or a folder on its way is a file, or the nearest
      existing one is not writable.
  """
  reason = _creation_problem(path)
  if reason:
    raise errors.UserError(f'{what} {path} is not writable: {reason}')


def _creation_problem(path):
  """Why the folder `path` cannot be written or made (`check_can_create_dir`), or `None`."""
  existing = os.path.abspath(path)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    return os.strerror(errno.ENOTDIR)
  if not os.access(existing, os.W_OK | os.X_OK):
    return os.strerror(errno.EROFS if _read_only_mount(existing) else errno.EACCES)
  return None


def _read_only_mount(folder):
  try:
    return bool(os.statvfs(folder).f_flag & os.ST_RDONLY)
  except OSError:
    return False


def check_can_write_file(path, what):
  """Checks, creating nothing, that the file `path` can be written by `write_atomic`: it is
  not a folder, and its folder exists and is writable or can be made
  (`check_can_create_dir`). An existing file is replaced by a rename, so its own mode does
  not matter.

  Raises:
    UserError: naming `what` (e.g. '--results') and `path`.
  """
  if os.path.isdir(path):
    raise errors.UserError(f'{what} {path} is a directory, not a file')
  reason = _creation_problem(os.path.dirname(os.path.abspath(path)))
  if reason:
    raise errors.UserError(f'{what} {path} is not writable: {reason}')


# ----------------------------------------------------------------------------------------
# Guarded readers.

# Schema types of `check_schema`: a JSON number (never a boolean), or a number or `null`
# (a non-finite number, as `to_json` writes it).
NUMBER = (int, float)
NUMBER_OR_NULL = (int, float, type(None))

_KIND_NAMES = {dict: 'an object', list: 'an array', str: 'a string', bool: 'a boolean',
               int: 'an integer', float: 'a number', type(None): 'null'}


def _kind(value):
  return _KIND_NAMES.get(type(value), type(value).__name__)


def _expected(types):
  names = ['a number' if t is float and int in types else _KIND_NAMES.get(t, t.__name__)
           for t in types if not (t is int and float in types)]
  return ' or '.join(names)


def _is_instance(value, types):
  types = types if isinstance(types, tuple) else (types,)
  if isinstance(value, bool) and bool not in types and object not in types:
    return False  # JSON's true is no number.
  return isinstance(value, types)


def _departure(value, schema, place):
  """How `value` departs from `schema` at `place` (a key path), or `None` if it does not."""
  where = place or 'the top level'
  if isinstance(schema, list):
    if not isinstance(value, list):
      return f'{where} is {_kind(value)}, not an array'
    items = [(f'{place}[{i}]', item, schema[0]) for i, item in enumerate(value)]
  elif isinstance(schema, dict):
    if not isinstance(value, dict):
      return f'{where} is {_kind(value)}, not an object'
    if list(schema) == [str]:  # Any keys, every value of the one schema.
      keys = [(key, schema[str]) for key in value]
    else:
      missing = [key for key in schema if key not in value]
      if missing:
        return f'{where} has no key {missing[0]!r}'
      keys = list(schema.items())
    items = [(f'{place}.{key}' if place else str(key), value[key], inner)
             for key, inner in keys]
  elif not _is_instance(value, schema):
    types = schema if isinstance(schema, tuple) else (schema,)
    return f'{where} is {_kind(value)}, not {_expected(types)}'
  else:
    items = []
  for inner_place, item, inner in items:
    departure = _departure(item, inner, inner_place)
    if departure:
      return departure
  return None


def check_schema(value, schema, what, path):
  """Checks a value read from JSON against `schema`.

  A schema is a Python type or tuple of types (`NUMBER`, `str`, `object` for anything; a
  boolean is not a number); `[inner]`, an array whose every item is `inner`;
  `{key: inner, ...}`, an object with at least these keys, each `inner` (`{}`, any
  object); or `{str: inner}`, an object whose every value is `inner`.

  Raises:
    UserError: `'<what> <path>: <place> ...'`, naming the first place (a key path such as
      `runs[3].knn.mean`) where `value` departs from `schema`.
  """
  departure = _departure(value, schema, '')
  if departure:
    raise errors.UserError(f'{what} {path}: {departure}')


def read_json(path, what, schema=dict, missing_ok=False):
  """The JSON value in the file `path`, checked against `schema` (`check_schema`).

  Args:
    path: Python `str`, the file.
    what: Python `str`, what the file is, for the message (e.g. '--results', 'run record').
    schema: what the value must be (`check_schema`); a JSON object by default.
    missing_ok: Python `bool`: return `None` if there is no file at `path`.

  Raises:
    UserError: naming `what` and `path`: the file cannot be read (missing, a folder), is
      not UTF-8, is empty, is not valid JSON (cut short, garbled: the line and column), or
      departs from `schema` (the key).
  """
  try:
    with open(path, encoding='utf-8') as f:
      text = f.read()
  except FileNotFoundError:
    if missing_ok:
      return None
    raise errors.UserError(f'{what} {path} cannot be read: {os.strerror(errno.ENOENT)}'
                           ) from None
  except OSError as e:
    raise errors.UserError(f'{what} {path} cannot be read: {e.strerror or e}') from None
  except UnicodeDecodeError as e:
    raise errors.UserError(f'{what} {path} is not UTF-8 text (byte {e.start})') from None
  if not text.strip():
    raise errors.UserError(f'{what} {path} is empty')
  try:
    value = json.loads(text)
  except json.JSONDecodeError as e:
    raise errors.UserError(f'{what} {path} is not valid JSON: {e.msg} (line {e.lineno}, '
                           f'column {e.colno})') from None
  check_schema(value, schema, what, path)
  return value


def read_csv(path, what, required=()):
  """The header and rows of the CSV file `path`, each row with as many fields as the header.

  Args:
    path: Python `str`, the file.
    what: Python `str`, what the file is, for the message (e.g. 'results').
    required: column names the header must hold.

  Returns:
    `(header, rows)`: the header's names, stripped, and the non-empty rows as
    `(line, fields)`, `line` counted from 1 with the header.

  Raises:
    UserError: naming `what` and `path`: the file cannot be read or is not CSV, has no
      header, lacks a required column or repeats one, or a row (its line) has a field
      more or less than the header.
  """
  try:
    with open(path, newline='', encoding='utf-8') as f:
      reader = csv.reader(f, skipinitialspace=True)
      header = next(reader, None)
      rows = [(reader.line_num, row) for row in reader if row]
  except (OSError, UnicodeDecodeError, csv.Error) as e:
    reason = e.strerror if isinstance(e, OSError) and e.strerror else e
    raise errors.UserError(f'cannot read {what} {path}: {reason}') from None
  if not header:
    raise errors.UserError(f'{what} {path} is empty (no header row)')
  header = [name.strip() for name in header]
  missing = [name for name in required if name not in header]
  if missing:
    raise errors.UserError(f'{what} {path}: its rows lack the columns {missing}')
  if len(set(header)) < len(header):
    raise errors.UserError(f'{what} {path}: its header repeats a column: {header}')
  for line, row in rows:
    if len(row) != len(header):
      short = (f': no value from column {header[len(row)]} on' if len(row) < len(header)
               else '')
      raise errors.UserError(f'{path} line {line} has {len(row)} fields, the header '
                             f'{len(header)}{short}')
  return header, rows


def csv_number(text, column, where, kind=float, empty_ok=False):
  """`kind(text)`, the number in the cell of `column`; `None` for an empty cell if
  `empty_ok`.

  Raises:
    UserError: `'<where>: <column> is empty'` or `'... is not a number: <text>'`, where
      `where` names the file and line (`'results.csv line 3'`).
  """
  text = text.strip()
  if not text:
    if empty_ok:
      return None
    raise errors.UserError(f'{where}: {column} is empty')
  try:
    return kind(text)
  except ValueError:
    expected = 'an integer' if kind is int else 'a number'
    raise errors.UserError(f'{where}: {column} is not {expected}: {text!r}') from None
