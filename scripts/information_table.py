"""Prints the information suite of a sweep CSV as the markdown table of docs/broken_elbo.md,
and checks the bounds that every run must satisfy.

One row per run with a suite, in the families' order: family, beta, annealing, NLL_K for
each K recorded, the test rate R, I_e and its cap log N, the marginal gap KL(e(z) || m(z)),
the active units, and the generative interval [E, G_K] (Appendix C). Then the checks, each
within its Monte Carlo error (4 standard errors): NLL_K non-increasing in K, I_e <= R (the
suite's own R estimate from the same draws) and I_e <= log N, E <= G. A failed check is
printed and makes the exit status 1.

  python scripts/information_table.py results/mnist_info.csv
"""

import csv
import math
import sys

from brokenelbo.models import families

SIGMAS = 4.


def read_rows(path):
  """The rows of the CSV that hold a suite, in the families' order, then beta, anneal."""
  with open(path) as f:
    rows = [r for r in csv.DictReader(f) if r.get('mutual_information')]
  order = {f: i for i, f in enumerate(families.FAMILIES)}
  return sorted(rows, key=lambda r: (order[r['family']], float(r['anneal']), float(r['beta'])))


def ks_of(row):
  return sorted(int(name[len('nll_k'):]) for name in row
                if name.startswith('nll_k') and not name.endswith('_stderr') and row[name])


def violations(row):
  """The bounds that `row` breaks by more than `SIGMAS` standard errors, as lines."""
  value = lambda name: float(row[name])
  found = []
  ks = ks_of(row)
  for small, large in zip(ks, ks[1:]):
    slack = SIGMAS * (value(f'nll_k{small}_stderr') + value(f'nll_k{large}_stderr'))
    if value(f'nll_k{large}') > value(f'nll_k{small}') + slack:
      found.append(f'NLL_{large} {value(f"nll_k{large}"):.2f} > NLL_{small} '
                   f'{value(f"nll_k{small}"):.2f}')
  info, info_se = value('mutual_information'), value('mutual_information_stderr')
  if info > value('log_num_examples') + 1e-4:
    found.append(f'I_e {info:.4f} > log N {value("log_num_examples"):.4f}')
  rate, rate_se = value('rate_information'), value('rate_information_stderr')
  if info > rate + SIGMAS * (info_se + rate_se):
    found.append(f'I_e {info:.3f} > R {rate:.3f}')
  e, g = value('generative_e'), value('generative_g')
  if e > g + SIGMAS * (value('generative_e_stderr') + value('generative_g_stderr')):
    found.append(f'E {e:.2f} > G {g:.2f}')
  return found


def main(path):
  rows = read_rows(path)
  if not rows:
    sys.exit(f'error: no run of {path} has the information suite')
  ks = ks_of(rows[0])
  counts = {(r['likelihood_examples'], r['information_examples'], r['generative_examples'],
             r['generative_g_num_samples']) for r in rows}
  print('| family | beta | anneal | ' + ' | '.join(f'NLL_{k}' for k in ks) +
        ' | R | I_e | gap | active | E | G |')
  print('|---|---|---|' + '---|' * len(ks) + '---|---|---|---|---|---|')
  failed = []
  for r in rows:
    nll = ' | '.join(f'{float(r[f"nll_k{k}"]):.2f}' for k in ks)
    print(f'| `{r["family"]}` | {float(r["beta"]):g} | {float(r["anneal"]):g} | {nll} | '
          f'{float(r["rate"]):.2f} | {float(r["mutual_information"]):.3f} | '
          f'{float(r["marginal_kl"]):.2f} | {r["active_units"]} | '
          f'{float(r["generative_e"]):.1f} | {float(r["generative_g"]):.1f} |')
    failed += [f'{r["family"]} beta {r["beta"]} anneal {r["anneal"]}: {line}'
               for line in violations(r)]
  for n_like, n_info, n_gen, k_g in sorted(counts):
    print(f'\nNLL_K on {n_like} test images evenly spaced through the split; I_e (at most '
          f'log {n_info} = {math.log(int(n_info)):.3f} nats), the gap and the active units on '
          f'{n_info} spread the same way; E and G_{k_g} from {n_gen} pairs (z, x) drawn from '
          'the model. R: the whole test split, one draw per image.')
  print(f'{len(rows)} runs; checks (within {SIGMAS:g} standard errors): NLL_K non-increasing '
        'in K, I_e <= min(R, log N), E <= G: ' + ('all hold.' if not failed else
                                                  f'{len(failed)} fail.'))
  for line in failed:
    print('FAILED ' + line)
  return 1 if failed else 0


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python scripts/information_table.py RESULTS.csv')
  sys.exit(main(sys.argv[1]))
