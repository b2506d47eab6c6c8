"""Prints a sweep CSV as the README's markdown table: test rate / distortion per family and
run setting (beta, annealing), the best -ELBO, and per decoder kind the lowest distortion
among runs at rates of at most 2 nats.

  python scripts/rd_table.py results/mnist_rd.csv
"""

import csv
import sys

from brokenelbo import families

LOW_RATE = 2.  # nats: the paper's "latent ignored" regime, as in the sweep's acceptance.


def main(path):
  with open(path) as f:
    rows = list(csv.DictReader(f))
  settings = sorted({(float(r['anneal']), float(r['beta'])) for r in rows})
  names = [f'beta {b:g}' + (f', anneal {a:g}' if a else '') for a, b in settings]
  print('| family | ' + ' | '.join(names) + ' |')
  print('|---|' + '---|' * len(settings))
  for family in families.FAMILIES:
    cells = {(float(r['anneal']), float(r['beta'])): r for r in rows if r['family'] == family}
    if not cells:
      continue
    line = [f"{float(cells[s]['rate']):.1f} / {float(cells[s]['distortion']):.1f}"
            if s in cells else '' for s in settings]
    print(f'| `{family}` | ' + ' | '.join(line) + ' |')
  best = min(rows, key=lambda r: -float(r['elbo']))
  print(f"\n{len(rows)} runs; best -ELBO {-float(best['elbo']):.2f} nats "
        f"(`{best['family']}`, beta {float(best['beta']):g}).")
  for decoder in '-+':
    low = [r for r in rows if r['decoder'] == decoder and float(r['rate']) <= LOW_RATE]
    if low:
      r = min(low, key=lambda r: float(r['distortion']))
      print(f"Lowest distortion at rate <= {LOW_RATE:g} nats, `{decoder}` decoder: "
            f"{float(r['distortion']):.2f} (`{r['family']}`, beta {float(r['beta']):g}, "
            f"rate {float(r['rate']):.2f}).")
    else:
      print(f'No `{decoder}`-decoder run has rate <= {LOW_RATE:g} nats.')


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python scripts/rd_table.py RESULTS.csv')
  try:
    main(sys.argv[1])
  except (OSError, KeyError, ValueError) as e:
    sys.exit(f'error: {sys.argv[1]} is not a readable sweep CSV: {e!r}')
