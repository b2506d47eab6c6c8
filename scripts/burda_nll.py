r"""NLL_K up to Burda et al.'s K = 5000 for trained runs, on a subset of the test split.

The information suite's NLL_K stops at K = 100 on 500 test images; Burda, Grosse and
Salakhutdinov (ICLR 2016) report NLL_5000 on the whole test split, which at the CPU
profile would take hours per run. This script computes the importance-weighted bound
(`statistics.information.importance_weighted_bound`, the encoder as proposal, the suite's
seed and batch size) for K = 1, 10, 100, 1000 and 5000 on `--examples` test images
evenly spaced through the split (`data.subsets`), times it, and says how long the whole
split would take at the measured rate. Nothing is written into the runs; `--output` writes
the numbers as JSON (never over an existing file).

    python scripts/burda_nll.py --examples=100 --output=results/burda_nll.json \
        results/mnist_info/---/beta=1_anneal=0_seed=0 ...
"""

import json
import os
import time

from absl import flags
import gin

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import errors
from brokenelbo.data import subsets
from brokenelbo.evaluation import suite
from brokenelbo.statistics import information
from brokenelbo.training import restore
from brokenelbo.utils import cli
from brokenelbo.utils import files

flags.DEFINE_integer('examples', 100, 'Test images, evenly spaced through the split.',
                     lower_bound=1)
flags.DEFINE_list('num_samples', ['1', '10', '100', '1000', '5000'], 'The K of NLL_K.')
flags.DEFINE_string('output', None, 'A JSON file for the numbers (not overwritten).')
FLAGS = flags.FLAGS


def measure(model_dir, examples, ks):
  """NLL_K of the run in `model_dir` on `examples` spread test images: a `dict`."""
  gin.clear_config()  # Each run's own config.
  run = restore.restore_run(model_dir)
  split = run.settings['dataset']('test')
  images = subsets.spread(split, examples)
  arguments = cli.configured_arguments(suite.information_suite)
  start = time.time()
  # The suite's seed (that of `evaluation.evaluate_run`) and batch size.
  bound = information.importance_weighted_bound(
      run.model.encoder, run.model.decoder, run.model.marginal_distribution(), images,
      run.settings['seed'] + 1, num_samples=ks, batch_size=arguments['batch_size'])
  seconds = time.time() - start
  return dict(run_dir=model_dir, step=run.step, examples=int(images.shape[0]),
              stride=subsets.stride(split.shape[0], examples), seconds=seconds,
              whole_split_seconds=seconds * split.shape[0] / images.shape[0],
              nll={str(k): bound['nll'][k] for k in ks},
              nll_stderr={str(k): bound['nll_stderr'][k] for k in ks})


def main(argv):
  run_dirs = argv[1:]
  if not run_dirs:
    raise errors.UserError('give the run directories to measure')
  try:
    ks = sorted({int(k) for k in FLAGS.num_samples})
  except ValueError:
    raise errors.UserError(f'--num_samples must be integers, got {FLAGS.num_samples}') from None
  if ks[0] < 1:
    raise errors.UserError(f'--num_samples must be >= 1, got {ks[0]}')
  if FLAGS.output and os.path.exists(FLAGS.output):
    raise errors.UserError(f'{FLAGS.output} exists; remove it or choose another --output')
  results = []
  print('| run | ' + ' | '.join(f'NLL_{k}' for k in ks) + ' | seconds | whole split (h) |')
  print('|---|' + '---|' * (len(ks) + 2))
  for model_dir in run_dirs:
    r = measure(model_dir, FLAGS.examples, ks)
    results.append(r)
    nll = ' | '.join(f"{r['nll'][str(k)]:.2f} ± {r['nll_stderr'][str(k)]:.2f}" for k in ks)
    print(f"| {model_dir} | {nll} | {r['seconds']:.0f} | "
          f"{r['whole_split_seconds'] / 3600:.1f} |", flush=True)
  if FLAGS.output:
    files.write_atomic(FLAGS.output, json.dumps(results, indent=1) + '\n')


if __name__ == '__main__':
  cli.start(main)
