"""Prints a `brokenelbo.bench` JSON as the markdown table of docs/broken_elbo.md, then its
checks against the performance targets: training FLOP utilization (60% of the matmul peak
for `---`, 50% for the PixelCNN families), fast PixelCNN sampling (10x the naive sampler,
identical samples), the input pipeline (10x the fastest family's training throughput)
and, where the file has them, the importance-weighted bound's FLOP utilization (70% of the training
step's, for every family).

Files of a bench that measured the importance-weighted bound and the information suite
(without `--nosuite`) get their columns: decoder passes (examples x K) per second, the
bound's FLOP utilization and its ratio to the training step's, and the whole suite's
extrapolated seconds on the test split.

  python scripts/bench_table.py results/bench_paper.json
"""

import json
import sys

# Per family; a file without these fields is refused.
REQUIRED = ('batch_size', 'train_images_per_second', 'train_flop_utilization',
            'eval_images_per_second', 'sample_seconds')


# Columns of the files that have them: (header, field, format).
INFORMATION_COLUMNS = (('IW passes/s', 'iw_decoder_passes_per_second', ',.0f'),
                       ('IW FLOP util.', 'iw_flop_utilization', '.0%'),
                       ('IW / train util.', 'iw_to_train_utilization', '.2f'),
                       ('suite (s)', 'suite_seconds', ',.0f'))


def _cell(result, key, fmt):
  return format(result[key], fmt) if key in result else ''


def main(path):
  try:
    with open(path) as f:
      bench = json.load(f)
    results = bench['families']
    peak = bench['matmul_peak_flops']
    pipeline = bench['pipeline_images_per_second']
    if not results:
      raise ValueError('no families')
    for family, r in results.items():
      missing = [k for k in REQUIRED if k not in r]
      if missing:
        raise KeyError(f'{family} lacks {missing}')
  except (OSError, ValueError, KeyError, TypeError) as e:
    sys.exit(f'error: {path} is not a brokenelbo.bench JSON file: {e!r}')
  num_samples = bench.get('settings', {}).get('num_samples', 100)  # The flag's default.
  extra = [c for c in INFORMATION_COLUMNS if any(c[1] in r for r in results.values())]
  print('| family | train images/s | FLOP util. | XLA images/s | eval images/s | '
        f'{num_samples} samples (s) | naive (s) |'
        + ''.join(f' {header} |' for header, _, _ in extra))
  print('|---' * (7 + len(extra)) + '|')
  for family, r in results.items():
    print(f"| `{family}` | {r['train_images_per_second']:.1f} | "
          f"{r['train_flop_utilization']:.0%} | "
          f"{_cell(r, 'train_images_per_second_xla', '.1f')} | "
          f"{r['eval_images_per_second']:.0f} | {r['sample_seconds']:.2f} | "
          f"{_cell(r, 'naive_sample_seconds', '.1f')} |"
          + ''.join(f' {_cell(r, key, fmt)} |' for _, key, fmt in extra))
  batch = max(r['batch_size'] for r in results.values())
  print(f"\nbatch {batch}; matmul peak {peak / 1e9:.1f} GFLOP/s; input pipeline "
        f"{pipeline:,.0f} images/s; gin files {bench['gin_files']}")
  iw = [r for r in results.values() if 'iw_to_train_utilization' in r]
  if iw:
    r = iw[0]
    print(f"importance-weighted bound: {r['iw_examples']} examples x K={r['iw_num_samples']} "
          f"({r['iw_batch_size']} examples per batch, {r['iw_samples_per_chunk']} draws per "
          'chunk), steady state')
  if any('suite_seconds' in r for r in results.values()):
    print('suite (s): the whole information suite on the test split at its counts, '
          "extrapolated from timed calls (each family's 'suite' in the JSON says which)")

  def check(name, value, target, passed):
    print(f"{'met' if passed else 'NOT met'}: {name} {value} (target {target})")

  pixelcnn = [f for f in results if f[1] == '+']  # (encoder, decoder, marginal)
  if '---' in results:
    util = results['---']['train_flop_utilization']
    check('`---` FLOP utilization', f'{util:.0%}', '>= 60%', util >= .6)
  if pixelcnn:
    util = min(results[f]['train_flop_utilization'] for f in pixelcnn)
    check('lowest PixelCNN-family FLOP utilization', f'{util:.0%}', '>= 50%', util >= .5)
  naive = [f for f in pixelcnn if 'sampling_speedup' in results[f]]
  if naive:
    speedup = min(results[f]['sampling_speedup'] for f in naive)
    same = all(results[f]['samples_identical'] for f in naive)
    check('lowest sampling speedup over the naive sampler', f'{speedup:.1f}x', '>= 10x',
          speedup >= 10)
    check('samples identical to the naive sampler\'s', same, 'True', same)
  fastest = max(r['train_images_per_second'] for r in results.values())
  check('input pipeline / fastest training', f'{pipeline / fastest:.0f}x', '>= 10x',
        pipeline >= 10 * fastest)
  if iw:
    ratio = min(r['iw_to_train_utilization'] for r in iw)
    check('lowest importance-weighted bound / training FLOP utilization', f'{ratio:.2f}x',
          '>= 0.70x', ratio >= .7)


if __name__ == '__main__':
  if len(sys.argv) != 2:
    sys.exit('usage: python scripts/bench_table.py BENCH.json')
  main(sys.argv[1])
