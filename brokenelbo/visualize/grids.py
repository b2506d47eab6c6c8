"""Figure 4-style grids: reconstructions and generations of a model, as images.

- reconstructions: one row per example: x, then a z ~ e(z|x) drawn once, then several
  x' ~ d(x|z) from that same z, so the decoder's own randomness is visible;
- generations: one row per z ~ m(z): several x ~ d(x|z) from the same z.
"""

import io

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.data import subsets
from brokenelbo.utils import files
from brokenelbo.utils import seeds


@tf.function(autograph=False)  # Traced as written.
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
    return tf.reshape(samples, tf.concat([[n, num_decodes], tf.shape(samples)[1:]], 0))

  recon = tf.concat([x[:, tf.newaxis], decode(z, seeds[2])], axis=1)
  return recon, decode(z_prior, seeds[3])


def grid_arrays(vae, images, num_decodes=5, seed=0):
  """The reconstruction and generation grids of `images` `[N, H, W, 1]` as numpy arrays
  `[N, 1 + num_decodes, H, W, 1]` and `[N, num_decodes, H, W, 1]`."""
  x = tf.constant(images, tf.float32)
  recon, generated = _grids(vae, x, num_decodes, seeds.step_seed(seed, 0))
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
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  figure = Figure(figsize=(0.45 * (2 * num_decodes + 2) + 0.5, 0.45 * images.shape[0] + 0.9))
  show_grids(figure.subplots(), recon, generated, title)
  buffer = io.BytesIO()
  figure.savefig(buffer, format='png', dpi=120, bbox_inches='tight')
  files.write_atomic(path, buffer.getvalue())


@gin.configurable(denylist=['vae', 'images', 'path', 'title', 'seed'])
@domains.checked(examples=domains.NON_NEGATIVE_INT, decodes=domains.POSITIVE_INT)
def figure4_grids(vae, images, path, title, seed, examples=8, decodes=5):
  """The grids that `python -m brokenelbo.evaluate` draws of the split it evaluated.

  Args:
    vae: the model (`models.vae.VAE`).
    images: `uint8` images `[N, H, W, 1]`, the evaluated split.
    path: Python `str`, the PNG to write.
    title: Python `str`.
    seed: Python `int`, the seed of the draws.
    examples: Python `int`, rows of each grid, examples evenly spaced through `images`
      (`subsets.spread`); 0 draws nothing.
    decodes: Python `int`, samples x ~ d(x|z) per z.

  Returns:
    Python `bool`, whether a figure was drawn.
  """
  if not examples:
    return False
  draw_grids(vae, subsets.spread(images, examples), path, title, num_decodes=decodes,
             seed=seed)
  return True


def figure4(panels, num_examples=6, num_decodes=4, seed=0, columns=None):
  """Figure 4 (and 5): for each run, reconstructions and generations of its trained model.

  Each panel (see `grid_image`): rows of a test image x, then `num_decodes` x' ~ d(x|z) from
  one z ~ e(z|x); beside them rows of `num_decodes` x ~ d(x|z) from one z ~ m(z). The same
  test images (evenly spaced through the split) and seed for every run.

  Args:
    panels: Python `list` of `(title, restored)`, `restored` a `restore.RestoredRun`.
    num_examples: Python `int`, rows of each panel.
    num_decodes: Python `int`, decodes per z.
    seed: Python `int`, the seed of every panel's draws.
    columns: Python `int`, panels a row (Figure 5: 4), or `None` for one row.

  Returns:
    A matplotlib `Figure`.
  """
  # A panel is about 2 num_decodes + 2.5 images wide and num_examples high; 1 inch of
  # titles.
  panel_height = 2.4 * num_examples / (2 * num_decodes + 2.5)
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  columns = columns or len(panels)
  rows = -(-len(panels) // columns)
  figure = Figure(figsize=(2.4 * columns + 0.4, rows * (panel_height + 0.6) + 0.4),
                  layout='constrained')
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for ax in axes[len(panels):]:
    ax.set_axis_off()
  for ax, (title, restored) in zip(axes, panels):
    images = subsets.spread(restored.settings['dataset']('test'), num_examples)
    recon, generated = grid_arrays(restored.model, images, num_decodes, seed)
    show_grids(ax, recon, generated, title)
    ax.set_xlabel('')
  figure.suptitle("x | x' ~ d(x|z), z ~ e(z|x) | x ~ d(x|z), z ~ m(z)", fontsize=8)
  return figure
