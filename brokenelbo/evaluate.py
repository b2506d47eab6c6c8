r"""Evaluates a trained run and draws its Figure 4-style grids.

  python -m brokenelbo.evaluate --model_dir=runs/quick
  python -m brokenelbo.evaluate --model_dir=runs/quick --split=train \
      --gin_bindings='evaluate_run.num_z_samples = 10'

The run's own `config.gin` rebuilds the model, which is restored from the run's latest
checkpoint. Rate, distortion and ELBO (nats per example, whole split, averaged over
`num_z_samples` draws z ~ e(z|x) per example) are printed and appended to the run's
`metrics.jsonl` with `"source": "evaluate"`. With one z sample the numbers equal those of the
run's own final evaluation on that split (same seeds).

Figure 4 grids (`figure4_<split>.png` in `--output_dir`, default `MODEL_DIR/figures`):
- reconstructions: one row per example: x, then a z ~ e(z|x) drawn once, then several
  x' ~ d(x|z) from that same z, so the decoder's own randomness is visible;
- generations: one row per z ~ m(z): several x ~ d(x|z) from the same z.
Existing figures are kept unless `--overwrite`.
"""

import io
import json
import os

from absl import flags
from absl import logging
import gin
from matplotlib.figure import Figure
import numpy as np
import tensorflow as tf

from brokenelbo import cli
from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import data
from brokenelbo import files
from brokenelbo import model as model_lib
from brokenelbo import training

FLAGS = flags.FLAGS


def define_flags():
  """The command line's flags (defined only when run as a program, so that the module
  can be imported next to other entrypoints)."""
  flags.DEFINE_string('model_dir', None, 'The run to evaluate (as given to train).')
  flags.DEFINE_string('split', 'test', 'The split to evaluate.')
  flags.DEFINE_string('output_dir', None, 'Where to draw the grids (default MODEL_DIR/figures).')
  flags.DEFINE_bool('overwrite', False, 'Replace existing figures.')
  cli.define_gin_flags()
  flags.mark_flag_as_required('model_dir')


def load_run(model_dir, gin_bindings=()):
  """Rebuilds a run's model from its `config.gin` and restores its latest checkpoint.

  Returns:
    (vae, step, train_bindings): the restored `model.VAE`, the checkpoint's step and the
    run's `train` bindings (dataset, seed, ...) with references resolved.
  """
  config_path = os.path.join(model_dir, 'config.gin')
  if not os.path.isfile(config_path):
    raise cli.UserError(f'{model_dir} holds no run (no config.gin)')
  latest = tf.train.latest_checkpoint(model_dir)
  if latest is None:
    raise cli.UserError(f'{model_dir} holds no checkpoint yet')
  gin.clear_config()
  cli.parse_gin([config_path], list(gin_bindings))
  bindings = gin.get_bindings(training.train)
  bindings.setdefault('dataset', data.static_mnist)
  vae = bindings.get('model', model_lib.VAE)()
  seed = bindings.get('seed', 0)
  vae.rate_distortion(tf.zeros([1, *training.IMAGE_SHAPE]), training.step_seed(seed, 0))
  step = tf.Variable(0, dtype=tf.int64)
  checkpoint = tf.train.Checkpoint(model=vae, step=step)
  checkpoint.restore(latest).expect_partial().assert_existing_objects_matched()
  return vae, int(step), bindings


@tf.function
def _grids(vae, x, num_decodes, seed):
  """Reconstruction and generation grids as `[N, 1 + num_decodes, H, W, 1]` and
  `[N, num_decodes, H, W, 1]` images in [0, 1]; the reconstruction grid's first column is
  x."""
  seeds = tf.random.experimental.stateless_split(seed, 4)
  n = tf.shape(x)[0]
  z = vae.encoder(x).sample(seed=seeds[0])
  z_prior = vae.marginal_distribution().sample(n, seed=seeds[1])

  def decode(z, seed):
    tiled = tf.repeat(z, num_decodes, axis=0)  # Each z `num_decodes` times in a row.
    samples = vae.decoder(tiled).sample(seed=seed)
    return tf.reshape(samples, [n, num_decodes, *training.IMAGE_SHAPE])

  recon = tf.concat([x[:, tf.newaxis], decode(z, seeds[2])], axis=1)
  return recon, decode(z_prior, seeds[3])


def spread(images, num):
  """`num` images evenly spaced through `images` (a class-sorted split shows every class).

  Static binarized MNIST's test split, for one, starts with about a thousand zeros.
  """
  stride = max(images.shape[0] // num, 1)
  return images[::stride][:num]


def grid_arrays(vae, images, num_decodes=5, seed=0):
  """The reconstruction and generation grids of `images` `[N, H, W, 1]` as numpy arrays
  `[N, 1 + num_decodes, H, W, 1]` and `[N, num_decodes, H, W, 1]`."""
  x = tf.constant(images, tf.float32)
  recon, generated = _grids(vae, x, num_decodes, training.step_seed(seed, 0))
  return recon.numpy(), generated.numpy()


def grid_image(recon, generated, gap=0.5):
  """One image of both grids side by side: a row per example, the input first, then a
  grey column, then its decodes; a wider grey gap; then a generated z's decodes."""
  def tile(grid):
    return np.concatenate([np.concatenate(list(row[..., 0]), axis=1) for row in grid], axis=0)

  height = recon.shape[0] * recon.shape[2]
  left = tile(recon[:, :1])
  column = np.full([height, 2], gap)
  return np.concatenate([left, column, tile(recon[:, 1:]), np.full([height, 10], gap),
                         tile(generated)], axis=1)


def show_grids(ax, recon, generated, title):
  """Draws `grid_image` on the matplotlib axes `ax` with `title`."""
  ax.imshow(grid_image(recon, generated), cmap='gray_r', vmin=0, vmax=1,
            interpolation='nearest')
  ax.set_title(title, fontsize=8)
  ax.set_xlabel("x | x' ~ d(x|z), one z ~ e(z|x) per row | x ~ d(x|z), one z ~ m(z) per row",
                fontsize=7)
  ax.set_xticks([])
  ax.set_yticks([])


def draw_grids(vae, images, path, title, num_decodes=5, seed=0):
  """Draws the Figure 4-style grids of `images` `[N, H, W, 1]` (uint8) to the PNG `path`."""
  recon, generated = grid_arrays(vae, images, num_decodes, seed)
  figure = Figure(figsize=(0.45 * (2 * num_decodes + 2) + 0.5, 0.45 * images.shape[0] + 0.9))
  show_grids(figure.subplots(), recon, generated, title)
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=120, bbox_inches='tight')
  files.write_atomic(path, buffer.getvalue())


@gin.configurable
def evaluate_run(model_dir, split='test', output_dir=None, overwrite=False, num_z_samples=1,
                 batch_size=500, max_examples=None, grid_examples=8, grid_decodes=5,
                 vae=None, step=None, train_bindings=None):
  """Evaluates a restored run on a whole split, records it, and draws its grids.

  Args:
    model_dir: Python `str`, the run.
    split: Python `str`, the split to evaluate.
    output_dir: Python `str`, where the grids go (default `model_dir/figures`).
    overwrite: Python `bool`, replace existing figures.
    num_z_samples: Python `int`, draws z ~ e(z|x) per example (1: as in training).
    batch_size: Python `int`, evaluation batch.
    max_examples: Python `int` or `None` (the whole split), evaluate the first examples.
    grid_examples: Python `int`, rows of each grid, examples evenly spaced through the
      split (`spread`; 0: no figure).
    grid_decodes: Python `int`, samples x ~ d(x|z) per z in the grids.
    vae, step, train_bindings: the restored run (from `load_run`; not gin-bound).

  Returns:
    The metrics record appended to `metrics.jsonl`.
  """
  if num_z_samples < 1:
    raise cli.UserError(f'num_z_samples must be >= 1, got {num_z_samples}')
  output_dir = output_dir or os.path.join(model_dir, 'figures')
  figure = os.path.join(output_dir, f'figure4_{split}.png')
  if grid_examples and os.path.exists(figure) and not overwrite:
    raise cli.UserError(f'{figure} exists; pass --overwrite to replace it')
  dataset = train_bindings['dataset']
  images = dataset(split)[:max_examples]
  seed = train_bindings.get('seed', 0)
  # The same seed as the run's own evaluations: one z sample reproduces them exactly.
  evaluate = training.make_evaluate(vae, batch_size, seed + 1, num_samples=num_z_samples)
  result = evaluate(images)
  metrics = training.MetricsLog(os.path.join(model_dir, 'metrics.jsonl'), float('inf'))
  num_train = dataset('train')[:train_bindings.get('max_train_examples')].shape[0]
  steps_per_epoch = num_train // train_bindings.get('batch_size', 100)
  record = dict(step=step, epoch=step / steps_per_epoch, split=split,
                num_examples=int(images.shape[0]), num_z_samples=num_z_samples,
                source='evaluate', **result)
  metrics.append(record)
  if grid_examples:
    name = os.path.join(*os.path.normpath(os.path.abspath(model_dir)).split(os.sep)[-2:])
    draw_grids(vae, spread(images, grid_examples), figure,
               f'{name}: {split} R = {result["rate"]:.2f}, D = {result["distortion"]:.2f}',
               num_decodes=grid_decodes, seed=seed + 3)
    logging.info('Wrote %s.', figure)
  return record


def main(argv):
  del argv
  vae, step, bindings = load_run(FLAGS.model_dir, FLAGS.gin_bindings)
  record = evaluate_run(FLAGS.model_dir, FLAGS.split, FLAGS.output_dir, FLAGS.overwrite,
                        vae=vae, step=step, train_bindings=bindings)
  print(json.dumps(record))


if __name__ == '__main__':
  define_flags()
  cli.run(main)
