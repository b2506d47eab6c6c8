"""Tests of `statistics.two_sample`: exact small cases, the permutation null, and power."""

import itertools

import numpy as np
import pytest

from brokenelbo.statistics import two_sample


def test_hand_computed_case():
  # Hard limit in 1-D: 0 <-> 1 and 10 <-> 11 are mutual nearest neighbours, so T = 0. Over
  # the 3 splits of the pooled points into pairs T is 0, 4, 4: E T = 8/3, Var T = 32/9, and
  # S = (8/3) / sqrt(32/9) = sqrt(2).
  stat = two_sample.smooth_knn_statistic([[0.], [1.]], [[10.], [11.]], temperature=1e-3)
  assert stat == pytest.approx(np.sqrt(2.))
  # The labelling 0, 10 | 1, 11 puts every neighbour edge across: S = -(4 - 8/3) / sqrt(32/9).
  stat = two_sample.smooth_knn_statistic([[0.], [10.]], [[1.], [11.]], temperature=1e-3)
  assert stat == pytest.approx(-1. / np.sqrt(2.))


@pytest.mark.parametrize('n1,n2', [(4, 4), (3, 5)])
def test_standardised_under_the_permutation_null(n1, n2):
  # Over every labelling of one pooled sample, S has mean 0 and variance 1 exactly.
  pooled = np.random.default_rng(0).normal(size=(n1 + n2, 2))
  values = []
  for first in itertools.combinations(range(n1 + n2), n1):
    second = [i for i in range(n1 + n2) if i not in first]
    values.append(two_sample.smooth_knn_statistic(pooled[list(first)], pooled[second],
                                                  temperature=0.5))
  assert np.mean(values) == pytest.approx(0., abs=1e-10)
  assert np.var(values) == pytest.approx(1., rel=1e-10)


def test_batched_equals_per_pair():
  rng = np.random.default_rng(1)
  x, y = rng.normal(size=(3, 10, 2)), rng.normal(size=(3, 12, 2)) + 0.5
  batched = two_sample.smooth_knn_statistic(x, y)
  for i in range(3):
    assert batched[i] == pytest.approx(two_sample.smooth_knn_statistic(x[i], y[i]))


def test_small_for_one_distribution_large_for_two():
  rng = np.random.default_rng(2)
  data = rng.normal(size=(500, 2))
  same = two_sample.average_smooth_knn(
      data, lambda m, g: g.normal(size=(m, 2)), num_draws=300, seed=3)
  shifted = two_sample.average_smooth_knn(
      data, lambda m, g: g.normal(size=(m, 2)) + [1., 0.], num_draws=100, seed=3)
  assert same['values'].shape == (300,)
  assert abs(same['mean']) < 4.5 * same['stderr'] + 0.05
  assert shifted['mean'] > 3.
  assert shifted['mean'] > same['mean'] + 10. * (same['stderr'] + shifted['stderr'])


def test_average_is_reproducible_and_chunk_free():
  data = np.random.default_rng(4).normal(size=(150, 2))
  sample_fn = lambda m, g: g.normal(size=(m, 2))
  a = two_sample.average_smooth_knn(data, sample_fn, num_draws=10, seed=5, draws_per_chunk=10)
  b = two_sample.average_smooth_knn(data, sample_fn, num_draws=10, seed=5, draws_per_chunk=10)
  np.testing.assert_array_equal(a['values'], b['values'])


def test_rejects_unsupported_k():
  with pytest.raises(ValueError):
    two_sample.smooth_knn_statistic(np.zeros((3, 1)), np.ones((3, 1)), k=2)
