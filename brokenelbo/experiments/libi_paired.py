"""LiBI against every other method of Table 1 on the same test points (paired).

Table 1's spread is over data sets, which differ more from one another than the methods do
on any one of them, so "better by more than the spread" is a weak test with 2 or 5 data
sets. On one data set the methods are scored on the same 500 test points: the difference of
their exact test log-likelihoods, point by point, has a standard error of its own (the
differences' standard deviation over sqrt(500)); for models near one another it is far below
that of either mean, since the points that are hard for one are hard for the other
(LinearJTEx data set 0, LiBI against the VAE: 0.024 against 0.047 and 0.055). For each data
set of the results, this restores the kept restart of every method's kept setting
(`libi_runs.restore_kept`), computes log p_theta(x) of each test point exactly
(`synthetic_run.exact_log_likelihoods`: closed form, or quadrature), and reports LiBI's
minus each method's, and LiBI's minus the ground truth's, with their standard errors; and
the smooth k-NN statistics' difference, whose draws are independent (standard error
sqrt(se_1^2 + se_2^2)).
"""

import math

import numpy as np

from brokenelbo import errors
from brokenelbo.data import synthetic as data
from brokenelbo.experiments import libi_runs
from brokenelbo.experiments import libi_table

REFERENCE = 'libi'
TRUTH = 'truth'


def _kept_records(results, dataset):
  """`{(index, method): record}` of each method's kept setting on `dataset`."""
  kept = {method: entry['setting'] for method, entry in results['table'][dataset].items()}
  return {(r['index'], r['method']): r for r in results['runs']
          if r['dataset'] == dataset and r['selected'] is not None
          and kept.get(r['method']) == libi_table.setting_name(r['setting'])}


def _truth_knn(results, dataset, index):
  truth = next((t for t in results['ground_truth']
                if (t['dataset'], t['index']) == (dataset, index)), None)
  return truth and truth['knn']


def paired_comparison(results, output_dir=None, reference=REFERENCE):
  """LiBI against every method and the ground truth, per data set, on the same test points.

  Args:
    results: the results JSON (`libi_table.load_results`).
    output_dir: where the runs are (`libi_runs.restore_kept`); `None`: the run
      directories that the records name.
    reference: the method compared with the others (LiBI).

  Returns:
    list of `dict(dataset, index, method, log_likelihood, log_likelihood_stderr, knn,
    knn_stderr)`, per data set the ground truth (`method` 'truth') first: `reference`'s
    exact test log-likelihood minus the method's, and the method's smooth k-NN statistic
    minus `reference`'s (both positive where `reference` is the better); a data set with
    no kept `reference` run is left out.

  Raises:
    UserError: if a kept run's checkpoint is missing (checked before any computation).
  """
  # Imported here: it loads TensorFlow, which the table alone does not need.
  from brokenelbo.evaluation import synthetic_run  # pylint: disable=g-import-not-at-top
  compared = {dataset: _kept_records(results, dataset) for dataset in libi_table.DATASETS
              if reference in results['table'].get(dataset, {})}
  for dataset, records in compared.items():  # Every checkpoint, before any work.
    for (index, method), record in records.items():
      if not libi_runs.has_checkpoint(record, output_dir):
        raise errors.UserError(f'no checkpoint of the kept {method} run on {dataset} data '
                               f'set {index} in {libi_runs.record_dir(record, output_dir)}')
  rows, restored = [], {}  # A batch holds a method's runs on both data sets.
  for dataset, records in compared.items():
    for index in sorted({i for i, m in records if m == reference}):
      x_test = data.synthetic('test', name=dataset, index=index)
      points = {TRUTH: synthetic_run.exact_log_likelihoods(data.ground_truth(dataset),
                                                          x_test)[0]}
      knn = {TRUTH: _truth_knn(results, dataset, index)}
      for method in libi_table.METHODS:
        record = records.get((index, method))
        if record is None:
          continue
        model, restart = libi_runs.restore_kept(record, output_dir, restored)
        points[method] = synthetic_run.exact_log_likelihoods(
            model.generative_model(restart), x_test)[0]
        knn[method] = record['knn']
      for method, values in points.items():
        if method == reference:
          continue
        difference = points[reference] - values
        rows.append(dict(
            dataset=dataset, index=index, method=method,
            log_likelihood=float(np.mean(difference)),
            log_likelihood_stderr=float(np.std(difference, ddof=1) / math.sqrt(len(x_test))),
            **_knn_difference(knn.get(method), knn[reference])))
  return rows


def _knn_difference(other, reference):
  if not other or not reference:
    return dict(knn=math.nan, knn_stderr=math.nan)
  return dict(knn=other['mean'] - reference['mean'],
              knn_stderr=math.hypot(other.get('stderr', math.nan),
                                    reference.get('stderr', math.nan)))


def format_paired(rows, reference=REFERENCE):
  """Markdown: one line per data set and method, mean ± standard error."""
  name = libi_table.METHOD_TITLES[reference]
  lines = [f'| data set | index | {name} against | exact test LL, {name} minus it '
           f'| S-kNN, it minus {name} |', '|---|---|---|---|---|']
  for row in rows:
    title = ('ground truth' if row['method'] == TRUTH
             else libi_table.METHOD_TITLES[row['method']])
    lines.append(
        f'| {libi_table.DATASET_TITLES[row["dataset"]]} | {row["index"]} | {title} | '
        f'{row["log_likelihood"]:+.3f} ± {row["log_likelihood_stderr"]:.3f} | '
        f'{row["knn"]:+.2f} ± {row["knn_stderr"]:.2f} |')
  return '\n'.join(lines)
