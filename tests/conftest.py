"""Shared pytest fixtures: quiet TensorFlow logs and a clean gin config for every test."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import gin  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top

from brokenelbo import configurables  # pylint: disable=unused-import,g-import-not-at-top


@pytest.fixture(autouse=True)
def clear_gin_config():
  """Every test starts and ends with no gin bindings."""
  gin.clear_config()
  yield
  gin.clear_config()
