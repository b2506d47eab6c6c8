r"""The rate-distortion sweep as a study: families x betas x KL annealing x seeds.

Each run of the grid (`experiments.grid`) is `python -m brokenelbo.train` with its
family's config, the sweep's `--gin_file`s and `--gin_bindings`, and its own bindings
(`beta_schedule.beta`, `beta_schedule.anneal_epochs`, `train.seed`), in
`OUTPUT_DIR/<family>/beta=<b>_anneal=<a>_seed=<s>/`; then, unless `--noinformation`,
`python -m brokenelbo.evaluate --split=test` measures its information suite
(`evaluation.suite`: NLL_K, I_e, the marginal gap, active units, the generative bounds E
and G of Appendix C), without Figure 4 grids (`EVALUATE_BINDINGS`). `experiments.study`
runs them, resumably; a launcher, here or on Slurm.

The CSV (`columns`) is rewritten from the runs' records after every run: one row per
finished run (`run.json`: settings and final test and train R, D, ELBO), with the suite of
its `evaluation.json` where it was measured at the step the run finished
(`information_record`), else empty cells. The `nll_k<K>` columns are those of the union of
the K's the runs recorded, ascending, each K's value then its standard error;
`rate_information` is R on the suite's `information_examples` from the same draws as I_e
(so `marginal_kl = rate_information - mutual_information`), `log_num_examples` the cap of
I_e, `generative_g` G at the largest K. After `run_dir`, the AIS estimate of the model's
NLL, `ais_nll` with its standard error and `ais_examples`, from the run's `rd_curve.json`
where `python -m brokenelbo.rd_curve` recorded the test split's curve at the step the run
finished (`rd_curve_record`), else empty cells. A non-finite number is written `nan`.
Beside it, the sweep's experiment for TensorBoard's HParams dashboard (`visualize.hparams`).
"""

import csv
import io
import math
import os
import re

from brokenelbo import errors
from brokenelbo.experiments import grid as grid_lib
from brokenelbo.experiments import study
from brokenelbo.models import families as families_lib
from brokenelbo.training import checkpoints
from brokenelbo.training import restore
from brokenelbo.training import run_record
from brokenelbo.utils import cli
from brokenelbo.utils import files
from brokenelbo.visualize import hparams

# The columns of every row: the run's settings and its final evaluations.
TRAINING_COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'beta', 'anneal',
                    'seed', 'epochs', 'rate', 'distortion', 'elbo', 'train_rate',
                    'train_distortion', 'train_elbo')
# The information suite's columns after the nll_k<K> ones (empty for a run without it).
SUITE_COLUMNS = ('mutual_information', 'mutual_information_stderr', 'rate_information',
                 'rate_information_stderr', 'marginal_kl', 'marginal_kl_stderr',
                 'log_num_examples', 'active_units', 'generative_e', 'generative_e_stderr',
                 'generative_g', 'generative_g_stderr', 'generative_g_num_samples',
                 'likelihood_examples', 'information_examples', 'generative_examples')
# The AIS rate-distortion curve's columns, after run_dir (empty for a run without it):
# -log p(x) by AIS at beta = 1 (`evaluation.rd_curve`), its standard error over the
# examples, and how many examples were annealed.
AIS_COLUMNS = ('ais_nll', 'ais_nll_stderr', 'ais_examples')
# Integers among the suite's and the curve's columns, written without decimals.
_COUNT_COLUMNS = ('active_units', 'generative_g_num_samples', 'likelihood_examples',
                  'information_examples', 'generative_examples', 'ais_examples')
# What the sweep's evaluation binds before `--evaluate_bindings` (which may override it):
# no Figure 4 grids, which cost a run's decoder samples and would make a later
# `python -m brokenelbo.evaluate` of the run refuse to replace them.
EVALUATE_BINDINGS = ('figure4_grids.examples = 0',)
# The suite's names of NLL_K and of G at K (`suite.information_suite`).
_NLL_KEY = re.compile(r'nll_k(\d+)$')
_GENERATIVE_G_KEY = re.compile(r'generative_g_k(\d+)$')


def nll_columns(num_samples):
  """`nll_k<K>, nll_k<K>_stderr` for each K of `num_samples`, ascending."""
  return tuple(f'nll_k{k}{end}' for k in sorted(set(num_samples)) for end in ('', '_stderr'))


def columns(num_samples):
  """The CSV's header when its runs' suites recorded the K's `num_samples`."""
  return TRAINING_COLUMNS + nll_columns(num_samples) + SUITE_COLUMNS + ('run_dir',) + AIS_COLUMNS


def check_run_config(run, gin_files, gin_bindings, evaluate_bindings=()):
  """Parses the config of `run` into gin's (empty) config, then `evaluate_bindings` (those
  of its evaluation, `evaluate_command`) on top, as `brokenelbo.evaluate` parses them on
  top of the run's `config.gin`: a bad binding fails here, before anything runs.

  Raises:
    UserError: a bad binding, or `train.eval_splits` without 'train' and 'test'.
  """
  settings = restore.run_settings([f"configs/{run['family']}.gin", *gin_files],
                                  [*gin_bindings, *grid_lib.run_bindings(run)])
  splits = tuple(settings['eval_splits'])
  if 'test' not in splits or 'train' not in splits:
    raise errors.UserError(f"a sweep needs train.eval_splits to hold 'train' and 'test', got "
                           f'{splits}')
  cli.parse_gin([], [*EVALUATE_BINDINGS, *evaluate_bindings], '--evaluate_bindings')


def information_record(model_dir):
  """The information suite of a finished run: its evaluation record of the test split
  (`run_record.read_evaluations`) if it holds the suite (`mutual_information`) and was made
  at the step the run finished (`run.json`); `None` otherwise.

  Raises:
    UserError: if a record cannot be read, or a number of the suite is not one.
  """
  suite = run_record.final_evaluation(model_dir, 'test')
  if suite is None or 'mutual_information' not in suite:
    return None
  numbers = {name: files.NUMBER_OR_NULL for name in suite
             if name in SUITE_COLUMNS or name.startswith(('nll_k', 'generative_g_k'))}
  files.check_schema({'test': suite}, {'test': numbers}, 'evaluation record',
                     os.path.join(model_dir, run_record.EVALUATION_RECORD))
  return suite


def rd_curve_record(model_dir):
  """The AIS rate-distortion curve of a finished run's test split
  (`run_record.final_rd_curve`: made at the step the run finished), or `None`.

  Raises:
    UserError: if the record cannot be read, or lacks a number of `AIS_COLUMNS`.
  """
  curve = run_record.final_rd_curve(model_dir, 'test')
  if curve is not None:
    numbers = dict.fromkeys(AIS_COLUMNS, files.NUMBER_OR_NULL)
    files.check_schema({'test': curve}, {'test': numbers}, 'rate-distortion curve record',
                       os.path.join(model_dir, run_record.RD_CURVE_RECORD))
  return curve


def recorded_num_samples(suite):
  """The K's of the `nll_k<K>` entries of a suite record, ascending."""
  return sorted(int(m.group(1)) for m in map(_NLL_KEY.match, suite) if m)


def _cell(value, count=False):
  """A number as the CSV writes it: 4 decimals (counts none); `nan` if not finite."""
  if value is None or not math.isfinite(value):
    return 'nan'  # metrics.jsonl writes a non-finite number as null.
  return str(int(value)) if count else f'{value:.4f}'


def suite_cells(suite):
  """The CSV cells of a suite record (`information_record`): `{column: text}`."""
  cells = {}
  for k in recorded_num_samples(suite):
    for end in ('', '_stderr'):
      cells[f'nll_k{k}{end}'] = _cell(suite.get(f'nll_k{k}{end}'))
  g = [int(m.group(1)) for m in map(_GENERATIVE_G_KEY.match, suite) if m]
  if g:
    k = max(g)
    suite = dict(suite, generative_g=suite[f'generative_g_k{k}'],
                 generative_g_stderr=suite.get(f'generative_g_k{k}_stderr'),
                 generative_g_num_samples=k)
  for name in SUITE_COLUMNS:
    if name in suite:
      cells[name] = _cell(suite[name], count=name in _COUNT_COLUMNS)
  return cells


def curve_cells(curve):
  """The CSV cells of an AIS curve's record (`rd_curve_record`): `{column: text}`."""
  return {name: _cell(curve[name], count=name in _COUNT_COLUMNS)
          for name in AIS_COLUMNS if name in curve}


def csv_row(model_dir, record, suite=None, curve=None):
  """One CSV row from a finished run's record (`run.json`), its suite record and its AIS
  curve's record (`rd_curve_record`; each or `None`)."""
  test, train = record['metrics']['test'], record['metrics']['train']
  settings = record['hparams']
  family = settings['family']
  return dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
              dataset=settings['dataset'], beta=grid_lib.format_number(settings['beta']),
              anneal=grid_lib.format_number(settings['anneal_epochs']), seed=settings['seed'],
              epochs=grid_lib.format_number(settings['epochs']),
              rate=f"{test['rate']:.4f}", distortion=f"{test['distortion']:.4f}",
              elbo=f"{test['elbo']:.4f}", train_rate=f"{train['rate']:.4f}",
              train_distortion=f"{train['distortion']:.4f}",
              train_elbo=f"{train['elbo']:.4f}", **suite_cells(suite or {}),
              run_dir=model_dir, **curve_cells(curve or {}))


def finished_runs(output_dir):
  """The directories of the finished runs under `output_dir`, as (family, model_dir)."""
  runs = []
  for family in sorted(os.listdir(output_dir)) if os.path.isdir(output_dir) else []:
    family_dir = os.path.join(output_dir, family)
    if family not in families_lib.FAMILIES or not os.path.isdir(family_dir):
      continue
    model_dirs = (os.path.join(family_dir, name) for name in sorted(os.listdir(family_dir)))
    runs += [(family, d) for d in model_dirs if os.path.isdir(d) and run_record.is_finished(d)]
  return runs


# What a row reads of a finished run's record (`csv_row`), beyond `run_record.RUN_SCHEMA`.
_SPLIT_SCHEMA = {'rate': files.NUMBER, 'distortion': files.NUMBER, 'elbo': files.NUMBER}
RECORD_SCHEMA = {
    'hparams': {'family': str, 'dataset': str, 'beta': files.NUMBER,
                'anneal_epochs': files.NUMBER, 'seed': int, 'epochs': files.NUMBER},
    'metrics': {'test': _SPLIT_SCHEMA, 'train': _SPLIT_SCHEMA}}


def read_records(output_dir):
  """`(model_dir, run record, suite record or None, AIS curve record or None)` of every
  finished run under `output_dir` (`finished_runs`), in its order.

  Raises:
    UserError: if a record cannot be read or lacks what a row reads, naming it and the key.
  """
  records = []
  for _, model_dir in finished_runs(output_dir):
    record = run_record.read_run_record(model_dir)
    files.check_schema(record, RECORD_SCHEMA, 'run record',
                       os.path.join(model_dir, run_record.RUN_RECORD))
    records.append((model_dir, record, information_record(model_dir),
                    rd_curve_record(model_dir)))
  return records


def _write_results(output_dir, path):
  """The CSV, its rows ordered by dataset, family, annealing, beta and seed, then the
  sweep's HParams experiment (`visualize.hparams`)."""
  records = read_records(output_dir)
  model_dirs = [model_dir for model_dir, *_ in records]
  order = {f: i for i, f in enumerate(families_lib.FAMILIES)}
  keys = ('dataset', 'family', 'anneal_epochs', 'beta', 'seed')
  records.sort(key=lambda r: tuple(order.get(v, len(order)) if k == 'family' else v
                                   for k, v in zip(keys, map(r[1]['hparams'].get, keys))))
  num_samples = {k for _, _, suite, _ in records if suite for k in recorded_num_samples(suite)}
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=columns(num_samples), restval='',
                          lineterminator='\n')
  writer.writeheader()
  for model_dir, record, suite, curve in records:
    writer.writerow(csv_row(model_dir, record, suite, curve))
  files.write_atomic(path, out.getvalue())
  if model_dirs:
    hparams.write_experiment(output_dir, model_dirs)
  return len(records)


def train_command(run, model_dir, gin_files, gin_bindings):
  """The command that trains `run` of the grid: its family's config, the sweep's gin files
  and bindings, then the run's own bindings (`grid.run_bindings`)."""
  return study.command_line('train', model_dir, [f"configs/{run['family']}.gin", *gin_files],
                            [*gin_bindings, *grid_lib.run_bindings(run)])


def evaluate_command(model_dir, evaluate_bindings):
  """The command that measures a trained run's information suite on the test split:
  `brokenelbo.evaluate` with `EVALUATE_BINDINGS`, then `evaluate_bindings`."""
  return study.command_line('evaluate', model_dir, (), [*EVALUATE_BINDINGS, *evaluate_bindings],
                            '--split=test')


class Sweep(study.Study):
  """The rate-distortion sweep as a study: each run of the grid trained, then its
  information suite measured; the CSV rewritten after every run.

  Args:
    output_dir: Python `str`, where the runs live.
    results: Python `str`, the CSV.
    gin_files: Python `list` of `str`, the `--gin_file`s of every run's training.
    gin_bindings: Python `list` of `str`, the `--gin_bindings` of every run's training.
    threads_per_run: Python `int`, TensorFlow threads of each process.
    information: Python `bool`, measure each run's information suite (`evaluate_command`).
    evaluate_bindings: Python `list` of `str`, gin bindings of the evaluation, after
      `EVALUATE_BINDINGS`.
  """

  def __init__(self, output_dir, results, gin_files, gin_bindings, threads_per_run,
               information=True, evaluate_bindings=()):
    super().__init__(output_dir, threads_per_run)
    self.results = results
    self.gin_files = list(gin_files)
    self.gin_bindings = list(gin_bindings)
    self.information = information
    self.evaluate_bindings = list(evaluate_bindings)

  def model_dir(self, run):
    return os.path.join(self.output_dir, run['family'], grid_lib.run_name(run))

  def train_command(self, run):
    return train_command(run, self.model_dir(run), self.gin_files, self.gin_bindings)

  def evaluate_command(self, run):
    if not self.information:
      return None
    return evaluate_command(self.model_dir(run), self.evaluate_bindings)

  def needs_evaluation(self, run):
    """Whether `run` is to get its information suite: `information` is on, the run has no
    suite record of its final step (`information_record`), and it has a checkpoint to
    evaluate (a finished run kept without its checkpoints, as the committed sweep's runs
    are, cannot be measured and is left as it is)."""
    model_dir = self.model_dir(run)
    return (self.information and information_record(model_dir) is None
            and bool(checkpoints.checkpoint_steps(model_dir)))

  def collect(self):
    return _write_results(self.output_dir, self.results)


def write_results(output_dir, path):
  """Rewrites the CSV at `path` from every finished run under `output_dir` (under
  `study.collect_lock`); returns the number of rows."""
  return study.locked_collect(output_dir, lambda: _write_results(output_dir, path))
