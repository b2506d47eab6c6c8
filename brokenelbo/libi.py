r"""Reproduces Table 1 of the LiBI paper: `python -m brokenelbo.libi`.

  python -m brokenelbo.libi --output_dir=runs/libi --results=results/libi/table1.json
  python -m brokenelbo.libi --results=results/libi/table1.json --print_only

Trains every method and setting of the profile's grid on each synthetic data set (the
restarts of a setting as one batched computation), keeps each setting's restart by its
method's validation objective, evaluates it on the test split, and prints Table 1 beside
the paper's; `experiments.libi_table` states the protocol and `--profile=cpu` (the
default) its reductions. Runs execute one after another in this process, each writing its
own run directory; `--results` is rewritten after every run. Stopping and rerunning the
same command continues: evaluated settings are skipped and an interrupted one resumes from
its last checkpoint. `--datasets`, `--methods` and `--indices` select a part.
"""

import os
import sys

from absl import flags
import gin

from brokenelbo.data import synthetic as data
from brokenelbo.evaluation import synthetic_run
from brokenelbo.experiments import libi_table
from brokenelbo.training import restore
from brokenelbo.training import trainer
from brokenelbo.utils import cli
from brokenelbo.utils import configurables  # pylint: disable=unused-import
from brokenelbo.utils import files

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program)."""
  flags.DEFINE_string('output_dir', None, 'Where the runs live, one directory per setting.')
  flags.DEFINE_string('results', None, 'The results JSON (every run\'s record and Table 1), '
                      'rewritten after every run.')
  flags.DEFINE_enum('profile', 'cpu', sorted(libi_table.PROFILES),
                    'How much of the protocol: the paper\'s, the reduced one of the '
                    'committed results, or a smoke test.')
  flags.DEFINE_list('datasets', ['linear_jtex', 'gaussian', 'cubic_jtex', 'mobius'],
                    'Data-set types to run, in this order (the default: cheapest first).')
  flags.DEFINE_list('methods', list(libi_table.METHODS), 'Methods to run.')
  flags.DEFINE_list('indices', None, 'Data sets of each type to run (default: the '
                    'profile\'s first ones).')
  flags.DEFINE_bool('print_only', False, 'Print the table of --results and exit.')
  flags.DEFINE_string('figures_dir', None, 'Draw Figure 1 and the posterior figures 2-5 '
                      '(LinearJTEx and CubicJTEx data set 0, the VAE and LiBI settings kept '
                      'in Table 1, restored from --output_dir) here.')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figures.')
  flags.DEFINE_bool('remeasure_information', False,
                    'Measure I_q(X;Z) and KL(q(z)||p(z)) of every restart of the settings '
                    'already evaluated again, restoring each from its checkpoint (nothing is '
                    'trained), e.g. after a change of their estimator.')
  flags.DEFINE_multi_string('gin_bindings', [], 'Extra bindings for every run (e.g. '
                            '"train.log_every_steps = 5000").')


def _check_flags():
  for name, values, allowed in (('datasets', FLAGS.datasets, libi_table.DATASETS),
                                ('methods', FLAGS.methods, libi_table.METHODS)):
    unknown = sorted(set(values) - set(allowed))
    if unknown:
      raise cli.UserError(f'--{name}: unknown {", ".join(unknown)} (choose from '
                          f'{", ".join(allowed)})')
  indices = None
  if FLAGS.indices is not None:
    try:
      indices = [int(i) for i in FLAGS.indices]
    except ValueError:
      raise cli.UserError(f'--indices must be integers, got {FLAGS.indices}') from None
    if any(not 0 <= i < data.NUM_DATASETS for i in indices):
      raise cli.UserError(f'--indices must be in [0, {data.NUM_DATASETS})')
  return indices


def _train(run, profile, model_dir):
  """Trains one setting (resuming from its checkpoint); returns the seconds it took."""
  bindings = [*libi_table.setting_bindings(run.method, run.setting_dict,
                                           profile.epochs[run.dataset]),
              f'synthetic.name = {run.dataset!r}', f'synthetic.index = {run.index}',
              f'SyntheticVAE.restarts = {profile.restarts[run.dataset]}', *FLAGS.gin_bindings]
  gin.clear_config()
  cli.parse_gin(run.gin_files(), bindings)
  start = libi_table.now()
  trainer.train(model_dir=model_dir)
  gin.clear_config()
  return libi_table.now() - start


def _evaluation_seed(index):
  """The seed of every draw in the evaluation of data set `index`'s settings."""
  return 1000 + index


def _evaluate(run, profile, model_dir, train_seconds):
  """Evaluates a trained setting; returns its record (`libi.json`)."""
  start = libi_table.now()
  restored = restore.restore_run(model_dir)
  settings = dict(restored.settings)
  beta = gin.query_parameter('beta_schedule.beta')
  gin.clear_config()
  model = restored.model
  seed = _evaluation_seed(run.index)
  x_val = data.synthetic('validation', name=run.dataset, index=run.index)
  x_test = data.synthetic('test', name=run.dataset, index=run.index)
  objective = synthetic_run.validation_objective(model, run.method, x_val, seed, beta)
  restarts = synthetic_run.evaluate_restarts(model, x_test, seed)
  for r, values in enumerate(restarts):
    values['validation_objective'] = float(objective[r])
  record = dict(dataset=run.dataset, index=run.index, method=run.method,
                setting=run.setting_dict, epochs=settings['epochs'], step=restored.step,
                restarts=restarts, validation_objective=[float(v) for v in objective],
                profile=FLAGS.profile, run_dir=model_dir, train_seconds=train_seconds)
  record['selected'] = libi_table.select_restart(record)
  if record['selected'] is None:
    record['knn'] = dict(mean=None, stderr=None, num_draws=0)
  else:
    record['knn'] = synthetic_run.knn_statistic(model, record['selected'], x_test,
                                                profile.knn_draws, seed)
  record['eval_seconds'] = libi_table.now() - start
  return record


def _add_generative_information(record, model_dir):
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


def _remeasure_information(record, model_dir):
  """Replaces the I_q(X;Z) and KL(q(z)||p(z)) of every restart of `record` by a new
  measurement of the restored run (the same test points and seed as `_evaluate`)."""
  gin.clear_config()
  model = restore.restore_run(model_dir).model
  gin.clear_config()
  x_test = data.synthetic('test', name=record['dataset'], index=record['index'])
  infos = synthetic_run.restart_information(model, x_test, _evaluation_seed(record['index']))
  for restart, info in zip(record['restarts'], infos):
    for name in ('mutual_information', 'marginal_kl'):
      restart[name], restart[f'{name}_stderr'] = info[name], info[f'{name}_stderr']


def _truth(dataset, index, profile, output_dir):
  """Writes the ground truth's record of data set `index` (or adds what it lacks)."""
  path = os.path.join(output_dir, dataset, str(index), libi_table.TRUTH_FILE)
  if not os.path.exists(path):
    record = synthetic_run.truth_reference(dataset, index, profile.knn_draws)
  else:
    record = libi_table.load_results(path)
    if 'generative_mutual_information' in record:
      return
    values = synthetic_run.generative_mutual_information(
        synthetic_run.ground_truth_model(dataset))
    record['generative_mutual_information'] = None if values is None else float(values[0])
  files.write_atomic(path, files.to_json(record, indent=1, sort_keys=True) + '\n')


def _figures(results, output_dir, figures_dir):
  """Figure 1, and Figures 2-5 from the kept runs that `output_dir` holds."""
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
  written = rd_plane.write_figures(figures, figures_dir, overwrite=FLAGS.overwrite)
  print('\n'.join(written))


def _print_table(results):
  # The table from the runs themselves, so that a file written by an older version prints.
  print(libi_table.format_table(libi_table.summarize(results['runs']),
                                results['ground_truth']))
  runs = results['runs']
  print(f'{len(runs)} runs, {libi_table.elapsed_seconds(runs) / 3600:.2f} h of training '
        'and evaluation')


def main(argv):
  del argv
  if FLAGS.print_only:
    if not FLAGS.results or not os.path.isfile(FLAGS.results):
      raise cli.UserError(f'--print_only needs an existing --results file, got '
                          f'{FLAGS.results!r}')
    results = libi_table.load_results(FLAGS.results)
    _print_table(results)
    if FLAGS.figures_dir:
      _figures(results, FLAGS.output_dir, FLAGS.figures_dir)
    return 0
  if not FLAGS.output_dir or not FLAGS.results:
    raise cli.UserError('--output_dir and --results are required')
  indices = _check_flags()
  files.check_writable_dir(FLAGS.output_dir, '--output_dir')
  profile = libi_table.PROFILES[FLAGS.profile]
  runs = libi_table.make_runs(profile, FLAGS.datasets, FLAGS.methods, indices)
  done = 0
  for dataset in FLAGS.datasets:
    for index in (range(profile.num_datasets[dataset]) if indices is None else indices):
      _truth(dataset, index, profile, FLAGS.output_dir)
  for i, run in enumerate(runs):
    model_dir = os.path.join(FLAGS.output_dir, run.relative_dir())
    result_path = os.path.join(model_dir, libi_table.RESULT_FILE)
    if os.path.exists(result_path):
      done += 1
      record = libi_table.load_results(result_path)
      changed = _add_generative_information(record, model_dir)
      if FLAGS.remeasure_information:
        _remeasure_information(record, model_dir)
      if changed or FLAGS.remeasure_information:
        files.write_atomic(result_path,
                           files.to_json(record, indent=1, sort_keys=True) + '\n')
      continue
    print(f'[{i + 1}/{len(runs)}] {run.relative_dir()}', file=sys.stderr, flush=True)
    train_seconds = _train(run, profile, model_dir)
    record = _evaluate(run, profile, model_dir, train_seconds)
    files.write_atomic(result_path, files.to_json(record, indent=1, sort_keys=True) + '\n')
    libi_table.collect(FLAGS.output_dir, FLAGS.results)
  results = libi_table.collect(FLAGS.output_dir, FLAGS.results)
  results_profile = {r['profile'] for r in results['runs']}
  if len(results_profile) > 1:
    print(f'note: --output_dir holds runs of several profiles: {sorted(results_profile)}',
          file=sys.stderr)
  _print_table(results)
  if FLAGS.figures_dir:
    _figures(results, FLAGS.output_dir, FLAGS.figures_dir)
  print(f'{done} of {len(runs)} settings were evaluated before; reductions of the '
        f'protocol: {"; ".join(profile.reductions) or "none"}', file=sys.stderr)
  return 0


if __name__ == '__main__':
  define_flags()
  cli.run(main)
