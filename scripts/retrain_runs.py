"""Retrains committed sweep runs whose checkpoints were not kept, and checks that they are
the same runs.

Each run is trained again by the very training command of its log (`<run>.log`, the first
`-m brokenelbo.train` line), with only `--model_dir` moved under `--output_dir`, and as the
sweep ran it: `--threads` TensorFlow threads per run (the sweep's `--threads_per_run`, 1 by
default; other thread counts sum in other orders), `--parallel` runs at once; a run
begun there resumes, as `train` does, and one finished there (its `run.json`) is only
compared; a run whose checkpoint was kept is left alone. The runs are deterministic (stateless
seeds) on one machine: two retrainings of `---` at beta 1 on one 2-core Xeon wrote
byte-identical `run.json`s. Another CPU's kernels round differently, and an epoch of SGD
amplifies that: retrained on a Xeon of another model than the sweep's, the runs ended 0.04 to
3.1 nats away from the committed records (`+-+` at beta 0.1: test distortion 73.73 against
76.84). The information suite's reruns of 30 of the sweep's runs (results/mnist_info.csv)
differ from them by a median 0.17 and at most 11.9 nats (`+-v` at
beta 1: -ELBO 164.66 against 175.32). So a retrained run is the same command and
architecture, a run of the same quality, not the same numbers. The script prints the
largest difference per run and exits 1 if any exceeds `--tolerance` (15 nats by default).

  python scripts/retrain_runs.py --output_dir=runs/mnist_rd \
      --frontier=results/mnist_rd.csv [--split=test] [RUN_DIR ...]

With `--frontier`, the runs are those on the Pareto frontier of the CSV's (rate,
distortion) on `--split` (the models of the paper's Figure 6); run directories may also be
named one by one.
"""

import argparse
from concurrent import futures
import json
import os
import subprocess
import sys

from brokenelbo.visualize import rd_plane


def frontier_runs(csv_path, split):
  """The run directories of the CSV's runs on the Pareto frontier of (rate, distortion) on
  `split`, by increasing rate."""
  return [run.run_dir for run in rd_plane.frontier_runs(rd_plane.read_results(csv_path, split))]


def training_command(run_dir, model_dir):
  """The first training command of the run's log, its `--model_dir` replaced."""
  with open(run_dir + '.log') as f:
    line = next((l for l in f if l.startswith('# ') and ' -m brokenelbo.train ' in l), None)
  if line is None:
    raise SystemExit(f'error: {run_dir}.log holds no training command')
  return [_word(w) for w in _rejoin(line)
          if not w.startswith('--model_dir=')] + [f'--model_dir={model_dir}']


def _word(word):
  """A word of a logged command for this checkout: this interpreter for the logged one,
  and a family file named without its folder (as the sweep once passed it) under configs/."""
  if word.endswith('python'):
    return sys.executable
  name = word[len('--gin_file='):]
  if word.startswith('--gin_file=') and not os.path.exists(name):
    return f'--gin_file={os.path.join("configs", name)}'
  return word


def _rejoin(line):
  """The words of a logged command (`# DATE TIME python -m ... --flag=a b`): flags whose
  values hold spaces were logged unquoted, so each word that does not start a flag is
  joined to the flag before it."""
  words = []
  for word in line.split()[3:]:
    if words and words[-1].startswith('--') and not word.startswith('--'):
      words[-1] += ' ' + word
    else:
      words.append(word)
  return words


def largest_difference(committed, retrained):
  """The largest absolute difference between the final metrics of two run records."""
  difference = 0.
  for split, metrics in committed['metrics'].items():
    for name, value in metrics.items():
      if isinstance(value, (int, float)):
        difference = max(difference, abs(value - retrained['metrics'][split][name]))
  return difference


def retrain(run, output_dir, threads):
  """Retrains `run` under `output_dir` (unless retrained before) with `threads` TensorFlow
  threads; returns its retrained directory, or `None` if its checkpoint was kept."""
  if os.path.exists(os.path.join(run, 'checkpoint')):
    return None
  family, name = run.rstrip('/').split(os.sep)[-2:]
  model_dir = os.path.join(output_dir, family, name)
  os.makedirs(os.path.dirname(model_dir), exist_ok=True)
  if not os.path.exists(os.path.join(model_dir, 'run.json')):  # Else retrained before.
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads),
               TF_NUM_INTEROP_THREADS=str(threads))
    with open(model_dir + '.log', 'a') as log:
      command = training_command(run, model_dir)
      log.write('# ' + ' '.join(command) + '\n')
      log.flush()
      status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT,
                              env=env).returncode
    if status:
      raise SystemExit(f'error: {model_dir}: exit status {status}; see {model_dir}.log')
  return model_dir


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('runs', nargs='*', help='committed run directories')
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--frontier', help='a sweep CSV: retrain its frontier runs')
  parser.add_argument('--split', default='test', choices=sorted(rd_plane.SPLIT_COLUMNS))
  parser.add_argument('--tolerance', type=float, default=15., help='nats')
  parser.add_argument('--parallel', type=int, default=2, help='runs at once')
  parser.add_argument('--threads', type=int, default=1,
                      help="TensorFlow threads per run (the sweep's --threads_per_run)")
  args = parser.parse_args()
  if args.parallel < 1 or args.threads < 1:
    raise SystemExit('error: --parallel and --threads must be >= 1')
  runs = list(args.runs) + (frontier_runs(args.frontier, args.split) if args.frontier else [])
  worst = 0.
  with futures.ThreadPoolExecutor(args.parallel) as pool:
    retrained = {pool.submit(retrain, run, args.output_dir, args.threads): run for run in runs}
    for done in futures.as_completed(retrained):
      run, model_dir = retrained[done], done.result()
      if model_dir is None:
        print(f'{run}: its checkpoint was kept', flush=True)
        continue
      with open(os.path.join(run, 'run.json')) as f, \
          open(os.path.join(model_dir, 'run.json')) as g:
        difference = largest_difference(json.load(f), json.load(g))
      worst = max(worst, difference)
      print(f'{run} -> {model_dir}: largest metric difference {difference:.2e} nats',
            flush=True)
  return 1 if worst > args.tolerance else 0


if __name__ == '__main__':
  sys.exit(main())
