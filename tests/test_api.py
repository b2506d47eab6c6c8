"""The package's Python API from a fresh interpreter: the README's worked example, run as
written, then checked against exact identities."""

import json
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADING = '## From Python'

# Run after the README's example, in the same interpreter: what it computed, and what must
# hold exactly. L_1 with the encoder as proposal is the one-sample ELBO with the very z of
# `elbo.make_evaluate` for the same seed and batch size (statistics.information).
CHECKS = """
import json
import numpy as np
second = brokenelbo.load_run('results/mnist_rd/-+v/beta=1_anneal=0_seed=0')
print('RESULT', json.dumps(dict(
    step=run.step, rd=rd, nll={str(k): v for k, v in bounds['nll'].items()},
    samples=list(samples.shape), binary=bool(np.all((samples == 0) | (samples == 1))),
    z=list(z.shape), second_step=second.step)))
"""


def readme_example():
  """The Python block under the README's `HEADING`."""
  text = open(os.path.join(REPO, 'README.md')).read()
  section = text[text.index(HEADING):]
  return re.search(r'```python\n(.*?)```', section, re.S).group(1)


@pytest.fixture(scope='module')
def example():
  result = subprocess.run([sys.executable, '-c', readme_example() + CHECKS], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  printed = [line for line in result.stdout.splitlines() if not line.startswith('RESULT')]
  record = json.loads(result.stdout.split('RESULT ', 1)[1])
  return printed, record


@pytest.mark.first
def test_the_readme_example_runs_from_a_fresh_interpreter(example):
  printed, record = example
  assert len(printed) == 1 and re.fullmatch(
      r'step 781: R \d+\.\d\d, D \d+\.\d\d, NLL_1 \d+\.\d\d, NLL_10 \d+\.\d\d nats',
      printed[0]), printed
  assert record['step'] == 781 and record['second_step'] == 781
  assert record['samples'] == [4, 28, 28, 1] and record['binary']
  assert record['z'][0] == 4


def test_the_example_s_numbers_obey_their_identities(example):
  _, record = example
  rd, nll = record['rd'], record['nll']
  # NLL_1 is -ELBO over the same draws; NLL_K falls with K (Burda et al. 2016).
  assert nll['1'] == pytest.approx(-rd['elbo'], abs=1e-3)
  assert rd['elbo'] == pytest.approx(-(rd['rate'] + rd['distortion']), abs=1e-4)
  assert nll['10'] < nll['1']
  # A trained model: an untrained one's distortion is about 544 nats (784 log 2).
  assert rd['distortion'] < 200
