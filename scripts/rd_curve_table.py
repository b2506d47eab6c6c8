"""Prints the AIS rate-distortion curves recorded in a sweep as a markdown table: per run
with a curve of the split (`python -m brokenelbo.rd_curve`), its encoder's point and the
curve's point at beta = 1 / beta' on the same images, the encoder's distance above the curve
in nats of rate at equal distortion (bracketed, `evaluation.rd_curve.rate_gap_bounds`), and
the AIS NLL beside the importance-weighted NLL_K of the encoder on the same images.

  python scripts/rd_curve_table.py results/mnist_rd.csv [--split=test]
"""

import argparse
import math
import sys

import numpy as np

from brokenelbo import errors
from brokenelbo.evaluation import rd_curve
from brokenelbo.models import families
from brokenelbo.training import run_record
from brokenelbo.visualize import rd_curves
from brokenelbo.visualize import rd_plane

HEADER = ("| family | beta' | encoder R / D | curve at beta = 1/beta' R / D | "
          'gap (nats of rate) | AIS NLL | NLL_1 | NLL_100 | NLL_5000 | NLL_5000 - AIS |')


def _number(value, stderr=None):
  if value is None or (isinstance(value, float) and math.isnan(value)):
    return ''
  return f'{value:.2f}' + ('' if stderr is None else f' ± {stderr:.2f}')


def row(run, curve, record):
  """The table's line of one run: `run` an `rd_plane.Point`, `curve` as
  `rd_curves.curve_of` gives it, `record` the split's record of `rd_curve.json`."""
  encoder = (curve['encoder_rate'], curve['encoder_distortion'])
  at = np.flatnonzero(np.isclose(curve['beta'], 1. / run.beta))
  point = (f"{curve['rate'][at[0]]:.2f} / {curve['distortion'][at[0]]:.2f}" if at.size
           else '')
  lower, upper = rd_curve.rate_gap_bounds(curve['beta'], curve['rate'], curve['distortion'],
                                          *encoder)
  gap = f'{_number(lower) or "?"} to {upper:.2f}'
  nll = [_number(record.get(f'nll_k{k}')) for k in (1, 100, 5000)]
  excess = _number(record.get('nll_k5000_minus_ais'), record.get('nll_k5000_minus_ais_stderr'))
  cells = [f'`{run.family}`', f'{run.beta:g}', f'{encoder[0]:.2f} / {encoder[1]:.2f}', point,
           gap, _number(record['ais_nll'], record['ais_nll_stderr']), *nll, excess]
  return '| ' + ' | '.join(cells) + ' |'


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('results', help='a sweep CSV')
  parser.add_argument('--split', default='test', choices=sorted(rd_plane.SPLIT_COLUMNS))
  args = parser.parse_args(argv)
  runs = rd_plane.read_results(args.results, args.split)
  found = rd_curves.curve_records(runs, args.split)
  if not found:
    raise errors.UserError(f'no run of {args.results} has an AIS curve of the {args.split} '
                           'split (python -m brokenelbo.rd_curve records one)')
  found.sort(key=lambda item: (-item[0].beta, families.FAMILIES.index(item[0].family)))
  print(HEADER)
  print('|---' * HEADER.count(' | ') + '|---|')
  examples = set()
  for run, curve in found:
    record = run_record.final_rd_curve(run.run_dir, args.split)
    print(row(run, curve, record))
    examples.add(record['ais_examples'])
  print(f'\n{len(found)} runs; examples per run: {", ".join(map(str, sorted(examples)))}.')


if __name__ == '__main__':
  try:
    main()
  except errors.UserError as e:
    sys.exit(f'error: {e}')
