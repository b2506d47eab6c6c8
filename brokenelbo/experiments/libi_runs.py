"""Runs the LiBI paper's Table 1 (`python -m brokenelbo.libi`): trains and evaluates each
setting, writes the ground truth's records, and draws Figures 1-5.

`run_table` is the command's work: for each setting of the profile's grid
(`experiments.libi_table`) on each synthetic data set, the restarts train as one batched
computation (`train_setting`, a `training.trainer.train` run in its own directory), the
restart that its method's validation objective prefers is kept, and the setting is
evaluated on the test split (`evaluate_setting`: test log-likelihood, ELBO, I(X;Z) and the
aggregate-posterior gap of every restart, the smooth k-NN statistic of the kept one) into
its `libi.json`; the results JSON is rewritten after every setting. A setting with its
`libi.json` is not run again; an interrupted one resumes from its last checkpoint.
"""

import os
import sys

import gin

from brokenelbo.data import synthetic as data
from brokenelbo.evaluation import synthetic_run
from brokenelbo.experiments import libi_table
from brokenelbo.training import restore
from brokenelbo.training import trainer
from brokenelbo.utils import cli
from brokenelbo.utils import files


def train_setting(run, profile, model_dir, gin_bindings=()):
  """Trains one setting (resuming from its checkpoint), with `gin_bindings` after its own;
  returns the seconds it took."""
  bindings = [*libi_table.setting_bindings(run.method, run.setting_dict,
                                           profile.epochs[run.dataset]),
              f'synthetic.name = {run.dataset!r}', f'synthetic.index = {run.index}',
              f'SyntheticVAE.restarts = {profile.restarts[run.dataset]}', *gin_bindings]
  gin.clear_config()
  cli.parse_gin(run.gin_files(), bindings)
  start = libi_table.now()
  trainer.train(model_dir=model_dir)
  gin.clear_config()
  return libi_table.now() - start


def evaluation_seed(index):
  """The seed of every draw in the evaluation of data set `index`'s settings."""
  return 1000 + index


def evaluate_setting(run, profile_name, model_dir, train_seconds):
  """Evaluates a trained setting of the profile `profile_name`; returns its record
  (`libi.json`)."""
  profile = libi_table.PROFILES[profile_name]
  start = libi_table.now()
  restored = restore.restore_run(model_dir)
  settings = dict(restored.settings)
  beta = gin.query_parameter('beta_schedule.beta')
  gin.clear_config()
  model = restored.model
  seed = evaluation_seed(run.index)
  x_val = data.synthetic('validation', name=run.dataset, index=run.index)
  x_test = data.synthetic('test', name=run.dataset, index=run.index)
  objective = synthetic_run.validation_objective(model, run.method, x_val, seed, beta)
  restarts = synthetic_run.evaluate_restarts(model, x_test, seed,
                                             profile.likelihood_samples)
  for r, values in enumerate(restarts):
    values['validation_objective'] = float(objective[r])
  record = dict(dataset=run.dataset, index=run.index, method=run.method,
                setting=run.setting_dict, epochs=settings['epochs'], step=restored.step,
                restarts=restarts, validation_objective=[float(v) for v in objective],
                profile=profile_name, run_dir=model_dir, train_seconds=train_seconds)
  record['selected'] = libi_table.select_restart(record)
  if record['selected'] is None:
    record['knn'] = dict(mean=None, stderr=None, num_draws=0)
  else:
    record['knn'] = synthetic_run.knn_statistic(model, record['selected'], x_test,
                                                profile.knn_draws, seed)
  record['eval_seconds'] = libi_table.now() - start
  return record


def add_generative_information(record, model_dir):
  """Adds I_theta(X;Z) to a record evaluated before it was measured (restores the run, no
  other evaluation); returns whether the record changed."""
  if all('generative_mutual_information' in r for r in record['restarts']):
    return False
  gin.clear_config()
  model = restore.restore_run(model_dir).model
  gin.clear_config()
  values = synthetic_run.generative_mutual_information(model)
  for r, restart in enumerate(record['restarts']):
    restart['generative_mutual_information'] = None if values is None else float(values[r])
  return True


def remeasure_information(record, model_dir):
  """Replaces the I_q(X;Z) and KL(q(z)||p(z)) of every restart of `record` by a new
  measurement of the restored run (the same test points and seed as `evaluate_setting`)."""
  gin.clear_config()
  model = restore.restore_run(model_dir).model
  gin.clear_config()
  x_test = data.synthetic('test', name=record['dataset'], index=record['index'])
  infos = synthetic_run.restart_information(model, x_test, evaluation_seed(record['index']))
  for restart, info in zip(record['restarts'], infos):
    for name in ('mutual_information', 'marginal_kl'):
      restart[name], restart[f'{name}_stderr'] = info[name], info[f'{name}_stderr']


def write_truth(dataset, index, profile, output_dir):
  """Writes the ground truth's record of data set `index` (or adds what it lacks)."""
  path = os.path.join(output_dir, dataset, str(index), libi_table.TRUTH_FILE)
  if not os.path.exists(path):
    record = synthetic_run.truth_reference(dataset, index, profile.knn_draws,
                                           num_samples=profile.likelihood_samples)
  else:
    record = libi_table.load_results(path)
    if 'generative_mutual_information' in record:
      return
    values = synthetic_run.generative_mutual_information(
        synthetic_run.ground_truth_model(dataset))
    record['generative_mutual_information'] = None if values is None else float(values[0])
  files.write_atomic(path, files.to_json(record, indent=1, sort_keys=True) + '\n')


def draw_figures(results, output_dir, figures_dir, overwrite=False):
  """Draws Figure 1, and Figures 2-5 from the kept runs that `output_dir` holds (or, without
  it, from the run directories that `results` names), into `figures_dir`; prints the paths
  written. An existing figure is replaced only with `overwrite`."""
  # Imported here: the table alone needs no matplotlib.
  from brokenelbo.visualize import libi_figures  # pylint: disable=g-import-not-at-top
  from brokenelbo.visualize import rd_plane  # pylint: disable=g-import-not-at-top
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
    model_dir = record and (os.path.join(output_dir, libi_table.Run(
        dataset, 0, method, tuple(sorted(record['setting'].items()))).relative_dir())
                            if output_dir else record['run_dir'])
    if not record or not os.path.isfile(os.path.join(model_dir, 'checkpoint')):
      print(f'note: no trained {method} run on {dataset} data set 0 under {output_dir}: '
            f'Figure {number} is not drawn', file=sys.stderr)
      continue
    if dataset not in references:
      references[dataset] = libi_figures.reference_panels(dataset, 0)
    gin.clear_config()
    restored = restore.restore_run(model_dir)
    gin.clear_config()
    learned = libi_figures.learned_panels(restored.model, record['selected'], dataset, 0)
    title = libi_table.METHOD_TITLES[method]
    figures[f'figure{number}'] = (
        lambda r=references[dataset], l=learned, t=title, d=dataset:
        libi_figures.method_figure(r, l, t, libi_table.DATASET_TITLES[d]))
  written = rd_plane.write_figures(figures, figures_dir, overwrite=overwrite)
  print('\n'.join(written))


def run_table(output_dir, results_path, profile_name, datasets, methods, indices=None,
              gin_bindings=(), remeasure=False):
  """Runs every setting of `libi_table.make_runs` that has no `libi.json` yet under
  `output_dir`, and rewrites `results_path` from all of them.

  A setting evaluated before is left as it is, except that I_theta(X;Z) is added where its
  record lacks it (`add_generative_information`) and, with `remeasure`, I_q(X;Z) and the
  aggregate-posterior gap are measured again (`remeasure_information`).

  Returns:
    (results, done, runs): the results (`libi_table.collect`), how many settings were
    evaluated before, and the `libi_table.Run`s of the selection.
  """
  profile = libi_table.PROFILES[profile_name]
  runs = libi_table.make_runs(profile, datasets, methods, indices)
  done = 0
  for dataset in datasets:
    for index in (range(profile.num_datasets[dataset]) if indices is None else indices):
      write_truth(dataset, index, profile, output_dir)
  for i, run in enumerate(runs):
    model_dir = os.path.join(output_dir, run.relative_dir())
    result_path = os.path.join(model_dir, libi_table.RESULT_FILE)
    if os.path.exists(result_path):
      done += 1
      record = libi_table.load_results(result_path)
      changed = add_generative_information(record, model_dir)
      if remeasure:
        remeasure_information(record, model_dir)
      if changed or remeasure:
        files.write_atomic(result_path,
                           files.to_json(record, indent=1, sort_keys=True) + '\n')
      continue
    print(f'[{i + 1}/{len(runs)}] {run.relative_dir()}', file=sys.stderr, flush=True)
    train_seconds = train_setting(run, profile, model_dir, gin_bindings)
    record = evaluate_setting(run, profile_name, model_dir, train_seconds)
    files.write_atomic(result_path, files.to_json(record, indent=1, sort_keys=True) + '\n')
    libi_table.collect(output_dir, results_path)
  return libi_table.collect(output_dir, results_path), done, runs
