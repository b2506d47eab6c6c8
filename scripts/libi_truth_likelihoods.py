"""Prints the ground truth's exact test log-likelihood on the LiBI data sets (Yacoby et al.
2020, Appendix E) beside the ground-truth rows of a committed Table 1, and the time the
quadrature takes; with --population, the ground truth's I_q(X;Z) and KL(q(z) || p(z))
under the data distribution on LinearJTEx and Gaussian (their q in closed form).

  python scripts/libi_truth_likelihoods.py [results/libi/table1.json] [--indices=0,1]
      [--repeats=3] [--population]

The exact value is in closed form on LinearJTEx and Gaussian and is also computed by the
quadrature there (`statistics.exact_likelihood`, tolerance 1e-4 nats per point), whose
difference from the closed form is printed; times are medians over --repeats runs.
"""

import argparse
import json
import time

import numpy as np

from brokenelbo.data import synthetic as data
from brokenelbo.statistics import exact_likelihood

TOLERANCE = 1e-4


def committed_truths(path):
  """{(dataset, index): (log_likelihood, its kind)} of the results file's ground truth."""
  with open(path) as f:
    results = json.load(f)
  return {(t['dataset'], t['index']): (t['log_likelihood'], t['log_likelihood_kind'])
          for t in results['ground_truth']}


def measure(name, index, repeats):
  """The quadrature on the test split of data set (name, index): its mean log-likelihood,
  standard error, largest error estimate, median seconds, and the closed form or None."""
  truth = data.ground_truth(name)
  x = data.synthetic('test', name=name, index=index)
  seconds = []
  for _ in range(repeats):
    start = time.time()
    result = exact_likelihood.log_marginal_likelihood(x, truth.mean, truth.noise_variance,
                                                      tolerance=TOLERANCE)
    seconds.append(time.time() - start)
  values = result['log_likelihood']
  closed = (float(np.mean(truth.exact_log_likelihood(x)))
            if hasattr(truth, 'exact_log_likelihood') else None)
  return dict(mean=float(np.mean(values)), stderr=float(np.std(values) / np.sqrt(len(x))),
              error=float(np.max(result['error'])), converged=bool(np.all(result['converged'])),
              seconds=float(np.median(seconds)), closed=closed,
              evaluations=int(np.median(result['evaluations'])))


def print_likelihoods(path, indices, repeats):
  committed = committed_truths(path)
  print('| data set | index | exact test LL (quadrature) | closed form | committed truth row '
        '| its kind | max error | grid points per x (median) | seconds (median) |')
  print('|---|---|---|---|---|---|---|---|---|')
  for name in data.NAMES:
    for index in indices:
      m = measure(name, index, repeats)
      stored, kind = committed.get((name, index), (None, 'not in the file'))
      closed = '-' if m['closed'] is None else f'{m["closed"]:.4f}'
      stored = '-' if stored is None else f'{stored:.2f}'
      print(f'| {name} | {index} | {m["mean"]:.4f} ± {m["stderr"]:.3f} | {closed} | {stored} '
            f'| {kind} | {m["error"]:.1e}{"" if m["converged"] else " (not converged)"} '
            f'| {m["evaluations"]} | {m["seconds"]:.1f} |')


def print_population():
  # Imported here: the models load TensorFlow, which the likelihoods do not need.
  # pylint: disable=g-import-not-at-top
  from brokenelbo.models import synthetic
  from brokenelbo.statistics import population
  # pylint: enable=g-import-not-at-top
  print('\n| data set | I_q(X;Z) | KL(q(z) ‖ p(z)) | R | seconds |')
  print('|---|---|---|---|---|')
  for name in ('linear_jtex', 'gaussian'):
    truth = data.ground_truth(name)
    phi = synthetic.mean_field_posterior_phi(name)
    scale = np.exp(phi['log_scale_bias'])

    def encode(x, phi=phi, scale=scale):
      return x @ phi['loc_kernel'] + phi['loc_bias'], np.broadcast_to(scale, (len(x), 2))

    start = time.time()
    r = population.population_information(encode, truth.mean, truth.noise_variance, seed=0)
    print(f'| {name} | {r["mutual_information"]:.3f} ± {r["mutual_information_stderr"]:.3f} '
          f'| {r["marginal_kl"]:.4f} ± {r["marginal_kl_stderr"]:.4f} '
          f'| {r["rate"]:.3f} ± {r["rate_stderr"]:.3f} | {time.time() - start:.1f} |')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('results', nargs='?', default='results/libi/table1.json')
  parser.add_argument('--indices', default='0,1')
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--population', action='store_true')
  args = parser.parse_args()
  print_likelihoods(args.results, [int(i) for i in args.indices.split(',')], args.repeats)
  if args.population:
    print_population()


if __name__ == '__main__':
  main()
