r"""A sweep over families x betas x KL annealing x seeds, and its results CSV.

  python -m brokenelbo.sweep --output_dir=runs/mnist_rd --results=results/mnist_rd.csv \
      --gin_file=configs/cpu.gin --betas=0.1,0.5,1,2 --anneal_epochs=0,1 \
      --anneal_decoders=+ --parallel=2

Each run is `python -m brokenelbo.train` with the family's config file, the shared
`--gin_file`s and `--gin_bindings`, and its own bindings (`beta_schedule.beta`,
`beta_schedule.anneal_epochs`, `train.seed`): never a copied .gin file. Runs live in
`OUTPUT_DIR/<family>/beta=<b>_anneal=<a>_seed=<s>/`, with the run's log next to it
(`<run dir>.log`, appended to). Up to `--parallel` runs go at once, each limited to
`--threads_per_run` TensorFlow threads.

A finished run has `sweep.json` in its directory (its settings and final metrics). Running
the same command again skips finished runs and resumes unfinished ones from their last
checkpoint, so a sweep can be stopped (or cut off) at any time and continued later.

After every finished run, `--results` is rewritten (atomically) from the `sweep.json` of
every finished run under `--output_dir`, one row per run:
`family, encoder, decoder, marginal, dataset, beta, anneal, seed, epochs, rate,
distortion, elbo` (test split, nats per example, whole split), then `train_rate,
train_distortion, train_elbo` and `run_dir`. `--collect_only` just rewrites it.
"""

import concurrent.futures
import csv
import io
import itertools
import json
import os
import subprocess
import sys
import threading
import time

from absl import flags
from absl import logging
import gin

from brokenelbo import cli
from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import families as families_lib
from brokenelbo import files

COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'beta', 'anneal', 'seed',
           'epochs', 'rate', 'distortion', 'elbo', 'train_rate', 'train_distortion',
           'train_elbo', 'run_dir')

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that the module
  can be imported next to other entrypoints)."""
  flags.DEFINE_string('output_dir', None, 'Where the runs live (one folder per run).')
  flags.DEFINE_string('results', None, 'The CSV to write (default: OUTPUT_DIR/results.csv).')
  flags.DEFINE_list('families', list(families_lib.FAMILIES), 'Families, run in this order.')
  flags.DEFINE_list('betas', ['0.1', '0.5', '1', '2'], 'Final betas of D + beta R.')
  flags.DEFINE_list('anneal_epochs', ['0'],
                    'KL annealing lengths in epochs (0: none): beta rises linearly from 0.')
  flags.DEFINE_string('anneal_decoders', '-+',
                      'Annealed runs (anneal_epochs > 0) only for families whose decoder is '
                      'one of these characters, e.g. "+" for the PixelCNN families.')
  flags.DEFINE_list('seeds', ['0'], 'Seeds (`train.seed`).')
  flags.DEFINE_integer('parallel', 2, 'Runs at once.')
  flags.DEFINE_integer('threads_per_run', 1, 'TensorFlow intra- and inter-op threads per run.')
  flags.DEFINE_bool('collect_only', False, 'Only rewrite the results CSV from finished runs.')
  flags.DEFINE_bool('dry_run', False, 'Print the commands of the runs to do, run nothing.')
  flags.mark_flag_as_required('output_dir')
  cli.define_gin_flags()


def _number(text, what):
  try:
    return float(text)
  except ValueError:
    raise cli.UserError(f'{what} must be numbers, got {text!r}') from None


def _format(value):
  """1.0 -> '1', 0.5 -> '0.5': the form used in run names and bindings."""
  return f'{value:g}'


def make_grid(families, betas, anneal_epochs, anneal_decoders, seeds):
  """The runs, in order: a list of dicts (family, beta, anneal, seed)."""
  families_lib.check_families(families)
  betas = [_number(b, 'betas') for b in betas]
  anneals = [_number(a, 'anneal_epochs') for a in anneal_epochs]
  if any(b < 0 for b in betas) or any(a < 0 for a in anneals):
    raise cli.UserError('betas and anneal_epochs must be >= 0')
  try:
    seeds = [int(s) for s in seeds]
  except ValueError:
    raise cli.UserError(f'seeds must be integers, got {seeds}') from None
  grid = []
  for family, anneal, beta, seed in itertools.product(families, anneals, betas, seeds):
    if anneal > 0 and family[1] not in anneal_decoders:
      continue
    grid.append(dict(family=family, beta=beta, anneal=anneal, seed=seed))
  return grid


def run_name(run):
  return f"beta={_format(run['beta'])}_anneal={_format(run['anneal'])}_seed={run['seed']}"


def run_bindings(run):
  return [f"beta_schedule.beta = {run['beta']!r}",
          f"beta_schedule.anneal_epochs = {run['anneal']!r}",
          f"train.seed = {run['seed']}"]


def run_settings(run, gin_files, gin_bindings):
  """Parses the run's config (bad bindings fail here, before anything runs) and returns
  the settings the CSV reports: dataset, epochs and the evaluated splits."""
  gin.clear_config()
  cli.parse_gin([f"{run['family']}.gin", *gin_files], [*gin_bindings, *run_bindings(run)])
  splits = tuple(gin.query_parameter('train.eval_splits'))
  if 'test' not in splits or 'train' not in splits:
    raise cli.UserError(f"a sweep needs train.eval_splits to hold 'train' and 'test', got "
                        f'{splits}')
  dataset = gin.query_parameter('train.dataset')
  return dict(dataset=getattr(getattr(dataset, 'configurable', None), 'name', str(dataset)),
              epochs=float(gin.query_parameter('train.epochs')), config=gin.config_str())


def final_metrics(model_dir, epochs):
  """{split: record} of the final evaluation in `model_dir/metrics.jsonl`, or `None` if the
  run has not reached `epochs`."""
  path = os.path.join(model_dir, 'metrics.jsonl')
  if not os.path.exists(path):
    return None
  last = {}
  with open(path) as f:
    for line in f:
      record = json.loads(line)
      if record['epoch'] >= epochs - 1e-6:
        last[record['split']] = record
  return last if {'train', 'test'} <= set(last) else None


def csv_row(record):
  """One CSV row from a finished run's `sweep.json`."""
  test, train = record['metrics']['test'], record['metrics']['train']
  family = record['family']
  return dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
              dataset=record['dataset'], beta=_format(record['beta']),
              anneal=_format(record['anneal']), seed=record['seed'],
              epochs=_format(record['epochs']),
              rate=f"{test['rate']:.4f}", distortion=f"{test['distortion']:.4f}",
              elbo=f"{test['elbo']:.4f}", train_rate=f"{train['rate']:.4f}",
              train_distortion=f"{train['distortion']:.4f}",
              train_elbo=f"{train['elbo']:.4f}", run_dir=record['run_dir'])


def write_results(output_dir, path):
  """Rewrites the CSV at `path` from every finished run under `output_dir`; returns the
  number of rows."""
  records = []
  for family in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
    family_dir = os.path.join(output_dir, family)
    if family not in families_lib.FAMILIES or not os.path.isdir(family_dir):
      continue
    for name in sorted(os.listdir(family_dir)):
      record_path = os.path.join(family_dir, name, 'sweep.json')
      if os.path.exists(record_path):
        with open(record_path) as f:
          records.append(json.load(f))
  order = {f: i for i, f in enumerate(families_lib.FAMILIES)}
  records.sort(key=lambda r: (r['dataset'], order[r['family']], r['anneal'], r['beta'],
                              r['seed']))
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator='\n')
  writer.writeheader()
  for record in records:
    writer.writerow(csv_row(record))
  files.write_atomic(path, out.getvalue())
  return len(records)


def train_command(run, model_dir, gin_files, gin_bindings):
  command = [sys.executable, '-m', 'brokenelbo.train', f'--model_dir={model_dir}',
             f"--gin_file={run['family']}.gin"]
  command += [f'--gin_file={f}' for f in gin_files]
  command += [f'--gin_bindings={b}' for b in [*gin_bindings, *run_bindings(run)]]
  return command


class Sweep:
  """Runs the grid's unfinished runs, `parallel` at a time, and keeps the CSV current."""

  def __init__(self, output_dir, results, gin_files, gin_bindings, threads_per_run):
    self.output_dir = output_dir
    self.results = results
    self.gin_files = gin_files
    self.gin_bindings = gin_bindings
    self.env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(threads_per_run),
                    TF_NUM_INTEROP_THREADS=str(threads_per_run), TF_CPP_MIN_LOG_LEVEL='2')
    self.lock = threading.Lock()

  def model_dir(self, run):
    return os.path.join(self.output_dir, run['family'], run_name(run))

  def execute(self, run, settings):
    """Trains (or resumes) one run; returns `None` on success, else an error line.

    A run whose training already reached its final evaluation (the sweep was stopped
    before it wrote the record, or its checkpoints were not kept) is recorded from its
    `metrics.jsonl` without training again, if its `config.gin` is the one the sweep would
    give it.
    """
    settings = dict(settings)
    config = settings.pop('config')
    model_dir = self.model_dir(run)
    command = train_command(run, model_dir, self.gin_files, self.gin_bindings)
    start = time.time()
    metrics = final_metrics(model_dir, settings['epochs'])
    config_path = os.path.join(model_dir, 'config.gin')
    if metrics is not None and os.path.exists(config_path):
      with open(config_path) as f:
        trained = f.read() == config
    else:
      trained = False
    if trained:
      logging.info('%s finished training before; recording it', model_dir)
      seconds = None
    else:
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)
      with open(model_dir + '.log', 'a') as log:
        log.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(command)}\n")
        log.flush()
        returncode = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT,
                                     env=self.env, cwd=os.getcwd())
      if returncode:
        return f'{model_dir}: exit status {returncode}; see {model_dir}.log'
      metrics = final_metrics(model_dir, settings['epochs'])
      if metrics is None:
        return f'{model_dir}: finished without a final evaluation; see {model_dir}.log'
      seconds = time.time() - start
    record = dict(run, **settings, run_dir=model_dir, metrics=metrics, command=command,
                  seconds=seconds)
    files.write_atomic(os.path.join(model_dir, 'sweep.json'),
                       json.dumps(record, indent=2) + '\n')
    with self.lock:
      rows = write_results(self.output_dir, self.results)
    test = metrics['test']
    logging.info('done %s in %.0f s: test rate %.3f distortion %.3f elbo %.3f (%d rows)',
                 model_dir, time.time() - start, test['rate'], test['distortion'],
                 test['elbo'], rows)
    return None


def main(argv):
  del argv
  results = FLAGS.results or os.path.join(FLAGS.output_dir, 'results.csv')
  if FLAGS.collect_only:
    rows = write_results(FLAGS.output_dir, results)
    print(f'{rows} finished runs -> {results}')
    return
  if FLAGS.parallel < 1 or FLAGS.threads_per_run < 1:
    raise cli.UserError('--parallel and --threads_per_run must be >= 1')
  grid = make_grid(FLAGS.families, FLAGS.betas, FLAGS.anneal_epochs, FLAGS.anneal_decoders,
                   FLAGS.seeds)
  sweep = Sweep(FLAGS.output_dir, results, FLAGS.gin_file, FLAGS.gin_bindings,
                FLAGS.threads_per_run)
  # Every run's config is parsed before any run starts: a bad binding fails at once.
  settings = [run_settings(run, FLAGS.gin_file, FLAGS.gin_bindings) for run in grid]
  todo = [(run, s) for run, s in zip(grid, settings)
          if not os.path.exists(os.path.join(sweep.model_dir(run), 'sweep.json'))]
  print(f'{len(grid)} runs, {len(grid) - len(todo)} finished, {len(todo)} to do', flush=True)
  if FLAGS.dry_run:
    for run, _ in todo:
      print(' '.join(train_command(run, sweep.model_dir(run), FLAGS.gin_file,
                                   FLAGS.gin_bindings)))
    return
  os.makedirs(FLAGS.output_dir, exist_ok=True)
  with concurrent.futures.ThreadPoolExecutor(FLAGS.parallel) as pool:
    errors = [e for e in pool.map(lambda args: sweep.execute(*args), todo) if e]
  rows = write_results(FLAGS.output_dir, results)
  print(f'{rows} finished runs -> {results}', flush=True)
  if errors:
    for error in errors:
      print(f'failed: {error}', file=sys.stderr)
    raise cli.UserError(f'{len(errors)} of {len(todo)} runs failed (listed above); rerun '
                        'the same command to retry them')


if __name__ == '__main__':
  define_flags()
  cli.run(main)
