"""Runs pytest on the files given as arguments (the `main` of the Bazel `py_test`s)."""

import sys

import pytest

if __name__ == '__main__':
  sys.exit(pytest.main(['-q', *sys.argv[1:]]))
