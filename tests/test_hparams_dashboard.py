"""A sweep in TensorBoard's HParams dashboard, read back through the HParams plugin's own
request handlers over TensorBoard's data provider (what the dashboard's table, parallel
coordinates and scatter plots are drawn from)."""

import os

import gin
import pytest
import tensorflow as tf
from tensorboard import context as tb_context_lib
from tensorboard.backend.event_processing import data_provider
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.plugins import base_plugin
from tensorboard.plugins.hparams import api_pb2
from tensorboard.plugins.hparams import backend_context
from tensorboard.plugins.hparams import get_experiment
from tensorboard.plugins.hparams import list_session_groups

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo.training import run_record
from brokenelbo.training import summaries
from brokenelbo.utils import cli
from brokenelbo.visualize import hparams

# Two runs of a sweep: (family, beta, final test and train metrics, evaluate's suite).
RUNS = (('-+v', 0.1, dict(rate=68.38, distortion=59.75, elbo=-128.13),
         dict(rate=68.9, distortion=58.5, elbo=-127.4), dict(nll_k100=127.39, active_units=64.)),
        ('---', 1., dict(rate=27.80, distortion=67.09, elbo=-94.89),
         dict(rate=27.87, distortion=67.51, elbo=-95.38), None))


def _write_run(model_dir, family, beta, test, train, suite):
  """What `train` (and `evaluate`, if `suite`) leave in a run directory for the dashboard:
  the session at step 0, eval scalars at two evaluations, evaluate's scalars and record."""
  gin.clear_config()
  cli.parse_gin([f'configs/{family}.gin', 'configs/smoke.gin'],
                [f'beta_schedule.beta = {beta}'])
  hparams.write_session(model_dir, summaries.run_hparams(family, tf.identity, 1., 16, 0))
  gin.clear_config()
  writer = tf.summary.create_file_writer(model_dir)
  for step, scale in ((2, 2.), (4, 1.)):  # The last evaluation is the final one.
    for split, values in (('test', test), ('train', train)):
      summaries.scalar_summaries(writer, step, f'eval/{split}',
                                 {k: v * scale for k, v in values.items()})
  if suite:
    summaries.scalar_summaries(writer, 4, 'evaluate/test', suite)
    run_record.write_evaluation(model_dir, 'test', dict(
        step=4, epoch=1., split='test', num_examples=500, **suite, nll_k100_stderr=0.7))
  writer.close()


def _plugin_context(logdir):
  multiplexer = plugin_event_multiplexer.EventMultiplexer()
  multiplexer.AddRunsFromDirectory(logdir)
  multiplexer.Reload()
  provider = data_provider.MultiplexerDataProvider(multiplexer, logdir)
  return backend_context.Context(base_plugin.TBContext(
      logdir=logdir, data_provider=provider, multiplexer=multiplexer))


def _session_groups(context, experiment):
  columns = [api_pb2.ColParams(hparam=h.name) for h in experiment.hparam_infos]
  columns += [api_pb2.ColParams(metric=m.name) for m in experiment.metric_infos]
  request = api_pb2.ListSessionGroupsRequest(
      start_index=0, slice_size=100, col_params=columns,
      allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS],
      aggregation_type=api_pb2.AGGREGATION_AVG)
  response = list_session_groups.Handler(tb_context_lib.RequestContext(), context, '',
                                         request).run()
  return response.session_groups


@pytest.fixture
def sweep_dir(tmp_path):
  for family, beta, test, train, suite in RUNS:
    model_dir = tmp_path / family / f'beta={beta:g}'
    model_dir.mkdir(parents=True)
    _write_run(str(model_dir), family, beta, test, train, suite)
  return tmp_path


def test_the_dashboard_shows_each_run_with_its_hyperparameters_and_final_metrics(sweep_dir):
  model_dirs = [str(sweep_dir / family / f'beta={beta:g}') for family, beta, *_ in RUNS]
  hparams.write_experiment(str(sweep_dir), model_dirs)
  hparams.write_experiment(str(sweep_dir), model_dirs)  # Replaces the first.
  assert len([p for p in os.listdir(sweep_dir) if p.endswith(hparams.EXPERIMENT_SUFFIX)]) == 1

  context = _plugin_context(str(sweep_dir))
  experiment = get_experiment.Handler(tb_context_lib.RequestContext(), context, '',
                                      api_pb2.GetExperimentRequest()).run()
  infos = {h.name: h for h in experiment.hparam_infos}  # The plugin sorts them by name.
  assert sorted(infos) == sorted(summaries.HPARAMS)
  family_info = infos['family']
  assert sorted(v.string_value for v in family_info.domain_discrete.values) == sorted(['---', '-+v'])
  metric_tags = [m.name.tag for m in experiment.metric_infos]
  assert metric_tags == [*hparams.EVAL_METRICS, 'evaluate/test/nll_k100',
                         'evaluate/test/active_units']

  groups = _session_groups(context, experiment)
  assert len(groups) == 2
  by_family = {g.hparams['family'].string_value: g for g in groups}
  for family, beta, test, train, suite in RUNS:
    group = by_family[family]
    assert group.hparams['beta'].number_value == pytest.approx(beta)
    assert group.hparams['decoder'].string_value == family[1]
    assert group.hparams['batch_size'].number_value == 16
    values = {m.name.tag: m for m in group.metric_values}
    # The final (last) evaluation, not the first, which was twice as large.
    for split, want in (('test', test), ('train', train)):
      for name, value in want.items():
        assert values[f'eval/{split}/{name}'].value == pytest.approx(value, rel=1e-6)
        assert values[f'eval/{split}/{name}'].training_step == 4
    for name, value in (suite or {}).items():
      assert values[f'evaluate/test/{name}'].value == pytest.approx(value, rel=1e-6)
    if suite is None:
      assert 'evaluate/test/nll_k100' not in values
