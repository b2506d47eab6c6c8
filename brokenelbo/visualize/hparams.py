"""A sweep in TensorBoard's HParams dashboard: each run's hyper-parameters, the sweep's
experiment (which hyper-parameters and metrics the dashboard shows).

`tensorboard --logdir=SWEEP_DIR` then lists the runs of a sweep as a table, in parallel
coordinates, and in scatter plots of any two metrics (rate against distortion: the RD
plane of Section 4.2). Three pieces, all read by TensorBoard's HParams plugin:

- every training run writes its *session* at step 0 (`training.summaries.run_hparams`):
  family and parts, data set, beta and its annealing, seed, epochs, batch;
- its metrics are its own scalars: `eval/<split>/{rate,distortion,elbo}` of every
  evaluation (the last one is the final), and `evaluate/<split>/<name>` of the information
  suite when `brokenelbo.evaluate` has run on it (its `evaluation.json`);
- the sweep writes one *experiment* summary at the top of its output folder
  (`write_experiment`): the hyper-parameters with the values its runs take, and the metrics
  by name, so that the dashboard shows these rather than every scalar of every run.
"""

import glob
import os

from tensorboard.backend.event_processing import event_file_loader
from tensorboard.plugins.hparams import api as hparams_api
from tensorboard.plugins.hparams import metadata as hparams_metadata
import tensorflow as tf

from brokenelbo.training import run_record
from brokenelbo.training import summaries

# Metrics every run has: its final evaluation (nats per example).
EVAL_METRICS = tuple(f'eval/{split}/{name}' for split in ('test', 'train')
                     for name in ('rate', 'distortion', 'elbo'))

# Fields of an evaluation record that are not measurements.
_NOT_METRICS = ('step', 'epoch', 'split', 'beta', 'num_examples', 'log_num_examples')

# The experiment's event file carries this suffix, so that it replaces only its own.
EXPERIMENT_SUFFIX = '.sweep_hparams'


def write_session(model_dir, hparams, suffix=''):
  """Writes `hparams` as the run's HParams session (a session-start summary) in an event
  file of its own."""
  writer = tf.summary.create_file_writer(model_dir, filename_suffix=suffix)
  summaries.hparams_summary(writer, hparams)
  writer.close()


def _event_files(directory):
  return sorted(glob.glob(os.path.join(glob.escape(directory), 'events.out.tfevents.*')))


def session(model_dir):
  """The run's HParams session as `{name: str or float}`, read back as TensorBoard's
  HParams plugin reads it, or `None` if the run has none."""
  for path in _event_files(model_dir):
    for event in event_file_loader.EventFileLoader(path).Load():
      for value in event.summary.value:
        if value.tag == hparams_metadata.SESSION_START_INFO_TAG:
          info = hparams_metadata.parse_session_start_info_plugin_data(
              value.metadata.plugin_data.content)
          return {name: value.string_value if value.HasField('string_value')
                  else value.number_value for name, value in info.hparams.items()}
  return None


def _suite_metrics(model_dir):
  """`evaluate/<split>/<name>` of every measurement in the run's evaluation records."""
  names = []
  for split, record in sorted(run_record.read_evaluations(model_dir).items()):
    for name, value in record.items():
      if name in _NOT_METRICS or name.endswith('_stderr') or \
          not isinstance(value, (int, float)):
        continue
      names.append(f'evaluate/{split}/{name}')
  return names


def _domain(values):
  values = sorted(set(values))
  return hparams_api.Discrete(values)


def write_experiment(output_dir, model_dirs):
  """Writes the HParams experiment of a sweep into `output_dir`, replacing the one it wrote
  before: every hyper-parameter with the values its runs take, the `EVAL_METRICS`, and the
  information suite's metrics of runs that `evaluate` has measured.

  Args:
    output_dir: Python `str`, the sweep's folder (TensorBoard's `--logdir`).
    model_dirs: Python `list` of run directories under it that have sessions.
  """
  sessions = [s for s in map(session, model_dirs) if s is not None]
  hparams = []
  for name in summaries.HPARAMS:  # The dashboard lists them by name.
    values = [s[name] for s in sessions if name in s]
    if values:
      hparams.append(hparams_api.HParam(name, _domain(values)))
  metrics = list(EVAL_METRICS)
  for model_dir in model_dirs:
    metrics += [m for m in _suite_metrics(model_dir) if m not in metrics]
  old = [p for p in _event_files(output_dir) if p.endswith(EXPERIMENT_SUFFIX)]
  writer = tf.summary.create_file_writer(output_dir, filename_suffix=EXPERIMENT_SUFFIX)
  with writer.as_default():
    hparams_api.hparams_config(hparams=hparams,
                               metrics=[hparams_api.Metric(m) for m in metrics])
  writer.close()
  for path in old:  # TensorBoard would read the first experiment it finds.
    os.remove(path)
