"""Every committed run config (`results/**/config.gin`, and the `operative_config.gin`
beside it) parses under today's gin registry.

A renamed gin binding (`train.objective` became `rate_distortion_loss.objective`) must be
renamed in the committed runs too (`scripts/convert_results_configs.py`), or `load_run`,
`evaluate` and the results scripts could no longer read them.
"""

import glob
import os

import gin
import pytest

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, 'results', '**', 'config.gin'), recursive=True))
OPERATIVE = [os.path.join(os.path.dirname(path), 'operative_config.gin') for path in CONFIGS]
# Bindings that were renamed: no committed config may hold the old name.
RENAMED = ('train.objective',)


def test_there_are_committed_configs():
  assert CONFIGS and all(os.path.exists(path) for path in OPERATIVE)


def test_every_committed_config_parses_and_is_what_train_writes():
  for path in CONFIGS:
    gin.clear_config()
    try:
      cli.parse_gin([path], [])
      # `train` writes `gin.config_str()`: the file is exactly that of its own bindings.
      with open(path) as f:
        assert gin.config_str() == f.read(), path
    finally:
      gin.clear_config()


def test_every_committed_operative_config_parses():
  for path in OPERATIVE:
    gin.clear_config()
    try:
      cli.parse_gin([path], [])
    finally:
      gin.clear_config()


@pytest.mark.parametrize('old', RENAMED)
def test_no_committed_config_holds_a_renamed_binding(old):
  for path in CONFIGS + OPERATIVE:
    with open(path) as f:
      assert not [line for line in f if line.startswith(f'{old} ')], path
