"""TensorBoard summaries of a run: training scalars, images at each evaluation, and the
run's hyper-parameters for the HParams dashboard."""

import numpy as np
from tensorboard.plugins.hparams import api as hparams_api
import tensorflow as tf

from brokenelbo.training import objectives
from brokenelbo.utils import cli
from brokenelbo.utils import seeds

# The hyper-parameters of a run's HParams session, in order (the one list of them:
# `visualize.hparams` reads it; a sweep's CSV calls `anneal_epochs` `anneal`).
HPARAMS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'binarization', 'beta',
           'anneal_epochs', 'seed', 'epochs', 'batch_size')

# The binarization recorded for a data set that does not state its own: its images are
# binary as given (static binarized MNIST: the one Bernoulli draw of Larochelle & Murray).
GIVEN_BINARIZATION = 'given'


def run_hparams(family, dataset, epochs, batch_size, seed):
  """The hyper-parameters of a run under the current gin config, `{name: str or float}`
  with the keys `HPARAMS`, in order: the family and its parts, the data and how it was
  binarized, beta and its annealing (`objectives.beta_schedule`'s defaults, then
  bindings; the mean of a per-member beta), seed, length and batch.

  Args:
    family: Python `str`, three letters (encoder, decoder, marginal); '???' for a model
      that does not say.
    dataset: the run's `train.dataset`: its `__name__` is reported (else its `repr`,
      `ImageFile('digits.npz')`), and its `binarization` ('threshold', 'bernoulli',
      'dynamic'; `GIVEN_BINARIZATION` if it has none).
    epochs: Python `float`.
    batch_size: Python `int`.
    seed: Python `int`.
  """
  schedule = cli.configured_arguments(objectives.beta_schedule)
  return dict(zip(HPARAMS, (
      family, family[0], family[1], family[2], getattr(dataset, '__name__', str(dataset)),
      str(getattr(dataset, 'binarization', GIVEN_BINARIZATION)),
      float(np.mean(schedule['beta'])),
      float(schedule['anneal_epochs']), int(seed), float(epochs), int(batch_size))))


def hparams_summary(writer, hparams):
  """Writes `{name: str, float or int}` as the run's HParams session (TensorBoard's HParams
  plugin): `tensorboard --logdir=SWEEP_DIR` then lists a sweep's runs as a table, in
  parallel coordinates and scatter plots against their `eval/<split>/*` scalars."""
  with writer.as_default():
    hparams_api.hparams(hparams)


def scalar_summaries(writer, step, prefix, values):
  """Writes `{name: float}` as the scalars `prefix/name` at `step`."""
  with writer.as_default(step=step):
    for name, value in values.items():
      tf.summary.scalar(f'{prefix}/{name}', value)


@tf.function(autograph=False)  # Traced as written.
def _reconstruct_and_generate(vae, x, seed):
  _, recon = vae.reconstruct(x, seed)
  _, samples = vae.generate(tf.shape(x)[0], seed)
  return recon, samples


def image_summaries(vae, x, current_step, writer, seed):
  """TensorBoard images: inputs, reconstructions x' ~ d(x|z), z ~ e(z|x); samples."""
  if x.shape[0] == 0:
    return
  x = tf.cast(x, tf.float32)
  seed = seeds.step_seed(seed + 2, current_step)
  recon, samples = _reconstruct_and_generate(vae, x, seed)
  with writer.as_default(step=current_step):
    tf.summary.image('images/input_then_reconstruction',
                     tf.concat([x, recon], axis=2), max_outputs=x.shape[0])
    tf.summary.image('images/samples', samples, max_outputs=x.shape[0])
