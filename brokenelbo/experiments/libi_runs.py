"""The LiBI paper's Table 1 as a study (`experiments.study`), its ground truth's records,
and its Figures 1-5.

Each setting of the profile's grid (`experiments.libi_table`) on each synthetic data set
is one run of the study: `python -m brokenelbo.train` trains its restarts as one batched
computation (`models.synthetic.SyntheticVAE`) with the method's config and the setting's
bindings, then `python -m brokenelbo.evaluate` evaluates them on the test split with
`evaluation.synthetic_run.restarts_suite` (every restart's validation objective and test
numbers, the kept restart, its smooth k-NN statistic). The results JSON is rewritten from
the runs' records (`run.json`, `evaluation.json`) after every run, and from the ground
truth's records (`truth.json`, one per data set, computed in this process). The runs go
through a launcher like the sweep's: on this machine or as a Slurm job array.

Batched (`members_per_run`), a run of the study is a `libi_table.Batch`: the restarts of
many settings and data sets of one method as members of one model, trained by one
`train` (`libi_table.batch_bindings`) and evaluated by one `evaluate` that scores each
setting's restarts as its run alone (`restarts_suite.groups`); `setting_record` reads each
setting's record out of the batch's, so that the results are those of an unbatched study.
"""

import os
import sys

import gin

from brokenelbo import errors
from brokenelbo.experiments import libi_table
from brokenelbo.experiments import study
from brokenelbo.training import run_record
from brokenelbo.utils import cli
from brokenelbo.utils import files

# `evaluation.synthetic_run` and `training.restore` load TensorFlow: imported where the
# ground truth is computed or a figure restores a run, so that a study whose runs and
# truths exist (a rerun, a Slurm submission) starts in a fraction of a second.

TRUTH_FILE = 'truth.json'
# What every evaluation binds: no Figure 4 grids (the data are vectors, not images).
EVALUATE_BINDINGS = ('figure4_grids.examples = 0',
                     'evaluate_run.information = @restarts_suite')


def train_bindings(run, profile, gin_bindings=()):
  """The gin bindings of `run` (a `libi_table.Run`, or a `libi_table.Batch` of them)
  under `profile` (its own choices, `Profile.bindings`, last), then `gin_bindings`."""
  chosen = profile.method_bindings(run.method)
  if isinstance(run, libi_table.Batch):
    return [*libi_table.batch_bindings(run, profile.epochs[run.dataset]), *chosen,
            *gin_bindings]
  return [*libi_table.setting_bindings(run.method, run.setting_dict,
                                       profile.epochs[run.dataset]),
          f'synthetic.name = {run.dataset!r}', f'synthetic.index = {run.index}',
          f'SyntheticVAE.restarts = {profile.restarts[run.dataset]}', *chosen, *gin_bindings]


def evaluate_bindings(run, profile):
  """The gin bindings of `run`'s evaluation (`synthetic_run.restarts_suite`); a batch's
  says which members are the restarts of each of its runs."""
  population = ([] if profile.population_queries is None else
                [f'restarts_suite.population_queries = {profile.population_queries}'])
  groups = ([f'restarts_suite.groups = {run.groups()!r}']
            if isinstance(run, libi_table.Batch) else [])
  return [*EVALUATE_BINDINGS, f'restarts_suite.method = {run.method!r}',
          f'restarts_suite.likelihood_samples = {profile.likelihood_samples}',
          f'restarts_suite.knn_draws = {profile.knn_draws}', *population, *groups]


def check_run_config(run, profile, gin_bindings=()):
  """Parses the training config of `run` (a `libi_table.Run` or `Batch`) into gin's
  (empty) config, then, in a config of their own, its evaluation's bindings: a bad
  binding (an unknown name, a value outside its domain) fails here, before anything runs.
  Leaves gin's config empty."""
  cli.require_empty_gin_config('check_run_config')
  try:
    cli.parse_gin(run.gin_files(), train_bindings(run, profile, gin_bindings))
    gin.clear_config()
    cli.parse_gin([], evaluate_bindings(run, profile), 'the evaluation\'s bindings')
  finally:
    gin.clear_config()


# What `setting_record` reads of a run's evaluation of the test split
# (`synthetic_run.restarts_suite`), of a setting's run or of each group of a batch's.
_SETTING_SCHEMA = {'restarts': [{}], 'validation_objective': [files.NUMBER_OR_NULL],
                   'selected': (int, type(None)), 'knn': {'mean': files.NUMBER_OR_NULL}}
_SUITE_SCHEMA = {'test': _SETTING_SCHEMA}
_BATCH_SCHEMA = {'test': {'groups': [dict(_SETTING_SCHEMA, members=[int])]}}


def setting_record(run, profile_name, model_dir, batch=None):
  """The record of an evaluated setting, from its run's records (`None` if it has none):
  the setting, every restart's numbers, the kept restart and its k-NN statistic.

  With `batch` (the `libi_table.Batch` that trained `run`, in `model_dir`), the same from
  the batch's evaluation of `run`'s members, and the record adds `batch` (its directory
  under the study's) and `members` (restart r of the setting is member `members[r]`).

  Raises:
    UserError: if a record cannot be read, lacks what the table reads, or its groups are
      not the batch's members, naming it.
  """
  evaluation = run_record.final_evaluation(model_dir, 'test')
  if evaluation is None or ('groups' if batch else 'restarts') not in evaluation:
    return None
  path = os.path.join(model_dir, run_record.EVALUATION_RECORD)
  files.check_schema({'test': evaluation}, _BATCH_SCHEMA if batch else _SUITE_SCHEMA,
                     'evaluation record', path)
  suite, where = evaluation, {}
  if batch is not None:
    members, g = batch.members(run), batch.runs.index(run)
    groups = evaluation['groups']
    if len(groups) != len(batch.runs) or groups[g]['members'] != members:
      raise errors.UserError(f'evaluation record {path}: test.groups[{g}] is not members '
                             f'{members} of the batch, as its training bound them')
    suite, where = groups[g], dict(batch=batch.relative_dir(), members=members)
  epochs = run_record.read_run_record(model_dir)['hparams'].get('epochs')
  return dict(dataset=run.dataset, index=run.index, method=run.method,
              setting=run.setting_dict, epochs=epochs, step=evaluation['step'],
              profile=profile_name, run_dir=model_dir, **where,
              **{k: suite[k] for k in ('restarts', 'validation_objective', 'selected', 'knn')})


def unit_records(run, profile_name, output_dir):
  """The records of `run`'s settings under `output_dir` (`setting_record`), `None` for a
  setting not evaluated yet: one for a `libi_table.Run`, one per run of a `Batch`."""
  model_dir = os.path.join(output_dir, run.relative_dir())
  if isinstance(run, libi_table.Batch):
    return [setting_record(one, profile_name, model_dir, run) for one in run.runs]
  return [setting_record(run, profile_name, model_dir)]


class LibiStudy(study.Study):
  """Table 1 as a study: the runs of `libi_table.make_runs`, each trained then evaluated
  by the package's commands (or, batched, the `libi_table.Batch`es of
  `libi_table.make_batches`, each holding the restarts of many of those runs); the results
  JSON rewritten after every run.

  Args:
    output_dir: Python `str`, where the runs live (`relative_dir` under it).
    results: Python `str`, the results JSON.
    profile_name: Python `str`, a key of `libi_table.PROFILES`.
    runs: the `libi_table.Run`s whose records make the table, or the `libi_table.Batch`es
      that hold them.
    threads_per_run: Python `int`, TensorFlow threads of each process.
    gin_bindings: Python `list` of `str`, bindings of every run's training, after its own.
  """

  def __init__(self, output_dir, results, profile_name, runs, threads_per_run,
               gin_bindings=()):
    super().__init__(output_dir, threads_per_run)
    self.results = results
    self.profile_name = profile_name
    self.runs = list(runs)
    self.gin_bindings = list(gin_bindings)

  @property
  def profile(self):
    return libi_table.PROFILES[self.profile_name]

  @property
  def num_settings(self):
    """The settings x data sets that the runs hold (a `Batch` holds several)."""
    return sum(len(getattr(run, 'runs', [run])) for run in self.runs)

  def model_dir(self, run):
    return os.path.join(self.output_dir, run.relative_dir())

  def train_command(self, run):
    return study.command_line('train', self.model_dir(run), run.gin_files(),
                              train_bindings(run, self.profile, self.gin_bindings))

  def evaluate_command(self, run):
    return study.command_line('evaluate', self.model_dir(run), (),
                              evaluate_bindings(run, self.profile), '--split=test')

  def needs_evaluation(self, run):
    return None in unit_records(run, self.profile_name, self.output_dir)

  def collect(self):
    return len(collect(self.output_dir, self.results, self.runs, self.profile_name)['runs'])


def collect(output_dir, path, runs, profile_name):
  """Writes the records of the evaluated settings of `runs` (`libi_table.Run`s or
  `Batch`es, trained under `profile_name`) under `output_dir` and the ground truth's
  records into `path` (JSON, atomically) with Table 1; returns the written dict."""
  records = [record for run in runs for record in unit_records(run, profile_name, output_dir)
             if record is not None]
  results = dict(table=libi_table.summarize(records), ground_truth=read_truths(output_dir),
                 runs=records)
  files.write_atomic(path, files.to_json(results, indent=1, sort_keys=True) + '\n')
  return results


def read_truths(output_dir):
  """The ground truth's records under `output_dir` (`libi_table.load_truth`), in path order.

  Raises:
    UserError: if one cannot be read or lacks what the table reads, naming it.
  """
  return [libi_table.load_truth(os.path.join(root, TRUTH_FILE))
          for root, _, names in sorted(os.walk(output_dir)) if TRUTH_FILE in names]


def write_truth(dataset, index, profile, output_dir):
  """Writes the ground truth's record of data set `index`, unless it exists: its exact
  and eq. 48 test log-likelihoods, information (test points and population) and k-NN
  statistic (`synthetic_run.truth_reference`)."""
  path = os.path.join(output_dir, dataset, str(index), TRUTH_FILE)
  if os.path.exists(path):
    return
  from brokenelbo.evaluation import synthetic_run  # pylint: disable=g-import-not-at-top
  record = synthetic_run.truth_reference(dataset, index, profile.knn_draws,
                                         num_samples=profile.likelihood_samples)
  files.write_atomic(path, files.to_json(record, indent=1, sort_keys=True) + '\n')


def record_dir(record, output_dir):
  """The run directory of a setting's record (`setting_record`): under `output_dir` where
  given (its setting's run, or its batch), else the one it names."""
  if not output_dir:
    return record['run_dir']
  relative = record.get('batch') or libi_table.Run(
      record['dataset'], record['index'], record['method'],
      tuple(sorted(record['setting'].items()))).relative_dir()
  return os.path.join(output_dir, relative)


def has_checkpoint(record, output_dir=None):
  """Whether the run directory of a setting's record (`record_dir`) holds a checkpoint."""
  return os.path.isfile(os.path.join(record_dir(record, output_dir), 'checkpoint'))


def restore_kept(record, output_dir=None, cache=None):
  """The kept restart of a setting's record as (model, restart), restored from its run
  directory (`record_dir`; a batch's kept member alone), or `None` if that directory
  holds no checkpoint. With `cache` (a dict of run directory: restored model), a batch
  that holds several records is restored once."""
  from brokenelbo.training import restore  # pylint: disable=g-import-not-at-top
  if not has_checkpoint(record, output_dir):
    return None
  model_dir = record_dir(record, output_dir)
  model = None if cache is None else cache.get(model_dir)
  if model is None:
    gin.clear_config()
    model = restore.restore_run(model_dir).model
    gin.clear_config()
    if cache is not None:
      cache[model_dir] = model
  restart = record['selected']
  if 'members' in record:  # A batched run: the kept restart's member alone.
    model, restart = model.select_members([record['members'][restart]]), 0
  return model, restart


def draw_figures(results, output_dir, figures_dir, overwrite=False):
  """Draws Figure 1, and Figures 2-5 from the kept runs that `output_dir` holds (or, without
  it, from the run directories that `results` names), into `figures_dir`; prints the paths
  written. An existing figure is replaced only with `overwrite`."""
  # Imported here: the table alone needs neither TensorFlow nor matplotlib.
  # pylint: disable=g-import-not-at-top
  from brokenelbo.visualize import libi_figures
  from brokenelbo.visualize import rd_plane
  # pylint: enable=g-import-not-at-top
  figures = {'figure1': libi_figures.figure1}
  numbers = {('linear_jtex', 'vae'): 2, ('linear_jtex', 'libi'): 3,
             ('cubic_jtex', 'vae'): 4, ('cubic_jtex', 'libi'): 5}
  references = {}
  for (dataset, method), number in numbers.items():
    kept = results['table'].get(dataset, {}).get(method)
    record = kept and next(
        (r for r in results['runs'] if r['dataset'] == dataset and r['index'] == 0
         and r['method'] == method
         and libi_table.setting_name(r['setting']) == kept['setting']), None)
    kept = record and restore_kept(record, output_dir)
    if not kept:
      print(f'note: no trained {method} run on {dataset} data set 0 under {output_dir}: '
            f'Figure {number} is not drawn', file=sys.stderr)
      continue
    if dataset not in references:
      references[dataset] = libi_figures.reference_panels(dataset, 0)
    learned = libi_figures.learned_panels(*kept, dataset, 0)
    title = libi_table.METHOD_TITLES[method]
    figures[f'figure{number}'] = (
        lambda r=references[dataset], l=learned, t=title, d=dataset:
        libi_figures.method_figure(r, l, t, libi_table.DATASET_TITLES[d]))
  written = rd_plane.write_figures(figures, figures_dir, overwrite=overwrite)
  print('\n'.join(written))


def make_study(output_dir, results_path, profile_name, datasets, methods, indices=None,
               threads_per_run=1, gin_bindings=(), members_per_run=None):
  """The study of `libi_table.make_runs`, or with `members_per_run` (or the profile's) of
  `libi_table.make_batches`; its ground truth's records are `write_truths`'s.

  Every record that the study's results are made from (the ground truth's, the runs') is
  read first, so that a damaged one is reported before anything is computed or written.

  Raises:
    UserError: if a record under `output_dir` cannot be read or lacks what the table
      reads, or `members_per_run` is too small (`libi_table.check_members_per_run`).
  """
  profile = libi_table.PROFILES[profile_name]
  members_per_run = members_per_run or profile.members_per_run
  runs = (libi_table.make_runs(profile, datasets, methods, indices) if not members_per_run
          else libi_table.make_batches(profile, members_per_run, datasets, methods, indices))
  read_truths(output_dir)
  for run in runs:
    unit_records(run, profile_name, output_dir)
  return LibiStudy(output_dir, results_path, profile_name, runs, threads_per_run,
                   gin_bindings)


def write_truths(study, datasets, indices=None):
  """Writes the ground truth's records of the data sets of `study` (each computed once)."""
  for dataset in datasets:
    for index in (range(study.profile.num_datasets[dataset]) if indices is None else indices):
      write_truth(dataset, index, study.profile, study.output_dir)
