"""Prints a sweep CSV as the markdown table of docs/broken_elbo.md: test rate / distortion
per family and run setting (beta, annealing), the best -ELBO, and per decoder kind the
lowest distortion among runs at rates of at most 2 nats.

  python scripts/rd_table.py results/mnist_rd.csv
"""

import sys

from brokenelbo import errors
from brokenelbo.models import families
from brokenelbo.visualize import rd_plane as plot

LOW_RATE = 2.  # nats: the paper's "latent ignored" regime, as in the sweep's acceptance.


def _setting(anneal, beta):
  return f'beta {beta:g}' + (f', anneal {anneal:g}' if anneal else '')


def main(path):
  runs = plot.read_results(path)
  settings = sorted({(run.anneal, run.beta) for run in runs})
  names = [_setting(*s) for s in settings]
  print('| family | ' + ' | '.join(names) + ' |')
  print('|---|' + '---|' * len(settings))
  for family in families.FAMILIES:
    cells = {(run.anneal, run.beta): run for run in runs if run.family == family}
    if not cells:
      continue
    line = [f'{cells[s].rate:.1f} / {cells[s].distortion:.1f}' if s in cells else ''
            for s in settings]
    print(f'| `{family}` | ' + ' | '.join(line) + ' |')
  best = min(runs, key=lambda run: run.rate + run.distortion)
  print(f'\n{len(runs)} runs; best -ELBO {best.rate + best.distortion:.2f} nats '
        f'(`{best.family}`, {_setting(best.anneal, best.beta)}).')
  for decoder in families.DECODERS:
    low = [run for run in runs if run.decoder == decoder and run.rate <= LOW_RATE]
    if low:
      run = min(low, key=lambda run: run.distortion)
      print(f'Lowest distortion at rate <= {LOW_RATE:g} nats, `{decoder}` decoder: '
            f'{run.distortion:.2f} (`{run.family}`, {_setting(run.anneal, run.beta)}, '
            f'rate {run.rate:.2f}).')
    else:
      print(f'No `{decoder}`-decoder run has rate <= {LOW_RATE:g} nats.')


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python scripts/rd_table.py RESULTS.csv')
  try:
    main(sys.argv[1])
  except errors.UserError as e:
    sys.exit(f'error: {e}')
