r"""Renames the gin bindings of the committed run configs that the training code renamed.

Run once, from the repository root, when the objective became the loss's own binding
(`train.objective` -> `rate_distortion_loss.objective`, commit b63df8b, which split the
training loop into `training/step.py`, `distributed.py`, `loop.py`), on 2026-12-07: it
converted 192 of the 193 files (`results/toy/operative_config.gin`, not a training run's,
holds no such binding). Run again, it changes nothing:

  python scripts/convert_results_configs.py

It rewrites every `results/**/config.gin` and `results/**/operative_config.gin` in place.
Both are written by gin (`gin.config_str()`, `gin.operative_config_str()`): sections
`# Parameters for <configurable>:` sorted by name, case ignored, bindings sorted within. A
renamed binding leaves its section (a section left empty says `# None.`, as gin writes it)
and joins its new configurable's section, created at its sorted place if missing, so that
each file is what gin would write for the same values today. Each `config.gin` is then
parsed with the registry and must come back as the same text (`gin.config_str()`).
"""

import glob
import os
import re
import sys

# Old binding name -> new one.
RENAMES = {'train.objective': 'rate_distortion_loss.objective'}
HEADER = re.compile(r'^# Parameters for (\S+):$')
RULE = '# ' + '=' * 78


def _sections(text):
  """(the lines before the first section, [[name, binding lines]]): each binding is one
  `list` of its lines (a value may continue on the next lines)."""
  head, sections = [], []
  for line in text.rstrip('\n').split('\n'):
    match = HEADER.match(line)
    if match:
      sections.append([match.group(1), []])
    elif not sections:
      head.append(line)
    elif line in (RULE, '# None.', ''):
      continue
    elif line.startswith(' '):  # A continued value.
      sections[-1][1][-1].append(line)
    else:
      sections[-1][1].append([line])
  return head, sections


def _sort_key(name):
  """gin's order of sections: the configurable's name, then its scopes, case ignored."""
  *scopes, selector = name.lower().split('/')
  return selector.split('.')[::-1] + scopes[::-1]


def _format(head, sections):
  lines = list(head)
  for name, bindings in sections:
    lines += [f'# Parameters for {name}:', RULE]
    lines += [line for binding in bindings for line in binding] or ['# None.']
    lines.append('')
  return '\n'.join(lines)


def _add(sections, configurable, binding):
  """Adds `binding` (its lines) to the section of `configurable`, in the order of the
  arguments' names; a missing section is created at its sorted place."""
  names = [name for name, _ in sections]
  if configurable not in names:
    later = [i for i, name in enumerate(names) if _sort_key(name) > _sort_key(configurable)]
    sections.insert(later[0] if later else len(sections), [configurable, []])
    names = [name for name, _ in sections]
  bindings = sections[names.index(configurable)][1]
  bindings.append(binding)
  bindings.sort(key=lambda lines: lines[0].split(' = ')[0])


def convert(text):
  """`text` (a gin-written config) with every binding of `RENAMES` renamed; the text itself
  if it holds none."""
  head, sections = _sections(text)
  moved = []
  for _, bindings in sections:
    for binding in list(bindings):
      name = binding[0].split(' = ')[0]
      if name in RENAMES:
        bindings.remove(binding)
        new = RENAMES[name]
        moved.append((new.rsplit('.', 1)[0], [new + binding[0][len(name):], *binding[1:]]))
  if not moved:
    return text
  for configurable, binding in moved:
    _add(sections, configurable, binding)
  return _format(head, sections)


def _check_parses(path, text):
  """Parses `text` (a `config.gin`) with the registry; it must be `gin.config_str()`."""
  import gin  # pylint: disable=g-import-not-at-top
  from brokenelbo import configurables  # pylint: disable=g-import-not-at-top,unused-import
  from brokenelbo.utils import cli  # pylint: disable=g-import-not-at-top
  gin.clear_config()
  cli.parse_gin([path], [])
  if gin.config_str() != text:
    raise SystemExit(f'{path}: converted, but gin writes it otherwise')
  gin.clear_config()


def main():
  paths = sorted(glob.glob('results/**/config.gin', recursive=True)
                 + glob.glob('results/**/operative_config.gin', recursive=True))
  changed = 0
  for path in paths:
    with open(path) as f:
      text = f.read()
    new = convert(text)
    if new != text:
      with open(path, 'w') as f:
        f.write(new)
      changed += 1
    if os.path.basename(path) == 'config.gin':
      _check_parses(path, new)
  print(f'{changed} of {len(paths)} files converted')


if __name__ == '__main__':
  sys.path.insert(0, os.getcwd())
  main()
