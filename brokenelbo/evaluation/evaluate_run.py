"""Evaluates a restored run on a whole split, records the result, draws its grids.

Rate, distortion and ELBO (nats per example, whole split, averaged over `num_z_samples` draws
z ~ e(z|x) per example), and the information suite (`suite`: NLL_K, I_e, the marginal gap,
active units, E and G), are appended to the run's `metrics.jsonl` with
`"source": "evaluate"` and written as TensorBoard scalars `evaluate/<split>/<name>`. With one z sample the numbers equal those of the run's own final
evaluation on that split (same seeds). The Figure 4-style grids go to
`output_dir/figure4_<split>.png` (see `visualize.grids`).
"""

import os

from absl import logging
import gin
import tensorflow as tf

from brokenelbo.data import subsets
from brokenelbo.evaluation import elbo
from brokenelbo.evaluation import suite
from brokenelbo.training import run_dir
from brokenelbo.training import summaries
from brokenelbo.utils import cli
from brokenelbo.visualize import grids


@gin.configurable(denylist=['run', 'model_dir', 'split', 'output_dir', 'overwrite'])
def evaluate_run(run, model_dir, split='test', output_dir=None, overwrite=False,
                 num_z_samples=1, batch_size=500, max_examples=None, grid_examples=8,
                 grid_decodes=5, information=suite.information_suite):
  """Evaluates a restored run on a whole split, records it, and draws its grids.

  Args:
    run: `restore.RestoredRun`, the run (from `restore.restore_run(model_dir)`).
    model_dir: Python `str`, the run's directory (a flag, not gin-bindable).
    split: Python `str`, the split to evaluate (a flag).
    output_dir: Python `str`, where the grids go (default `model_dir/figures`; a flag).
    overwrite: Python `bool`, replace existing figures (a flag).
    num_z_samples: Python `int`, draws z ~ e(z|x) per example (1: as in training).
    batch_size: Python `int`, evaluation batch.
    max_examples: Python `int` or `None` (the whole split), evaluate the first examples.
    grid_examples: Python `int`, rows of each grid, examples evenly spaced through the
      split (`subsets.spread`; 0: no figure).
    grid_decodes: Python `int`, samples x ~ d(x|z) per z in the grids.
    information: `None`, or `information(model, images, seed) -> {name: number}` (the
      default `suite.information_suite`: likelihood bounds, mutual information, marginal
      gap, active units, generative bounds), computed on the same examples and added to
      the record.

  Returns:
    The metrics record appended to `metrics.jsonl`.

  Raises:
    UserError: if a figure exists and not `overwrite`, or another process (training)
      holds the run's lock.
  """
  if num_z_samples < 1:
    raise cli.UserError(f'num_z_samples must be >= 1, got {num_z_samples}')
  output_dir = output_dir or os.path.join(model_dir, 'figures')
  figure = os.path.join(output_dir, f'figure4_{split}.png')
  if grid_examples and os.path.exists(figure) and not overwrite:
    raise cli.UserError(f'{figure} exists; pass --overwrite to replace it')
  with run_dir.RunLock(model_dir):  # Training writes metrics.jsonl too: one at a time.
    images = run.settings['dataset'](split)[:max_examples]
    seed = run.settings['seed']
    # The same seed as the run's own evaluations: one z sample reproduces them exactly.
    evaluate = elbo.make_evaluate(run.model, batch_size, seed + 1, num_samples=num_z_samples)
    result = evaluate(images)
    if information is not None:
      result.update(information(run.model, images, seed + 1))
    record = dict(step=run.step, epoch=run.step / run.steps_per_epoch, split=split,
                  num_examples=int(images.shape[0]), num_z_samples=num_z_samples,
                  source='evaluate', **result)
    run_dir.MetricsLog(os.path.join(model_dir, 'metrics.jsonl'), float('inf')).append(record)
    writer = tf.summary.create_file_writer(model_dir)
    summaries.scalar_summaries(writer, run.step, f'evaluate/{split}', result)
    writer.close()
  if grid_examples:
    name = os.path.join(*os.path.normpath(os.path.abspath(model_dir)).split(os.sep)[-2:])
    grids.draw_grids(run.model, subsets.spread(images, grid_examples), figure,
                     f'{name}: {split} R = {result["rate"]:.2f}, '
                     f'D = {result["distortion"]:.2f}',
                     num_decodes=grid_decodes, seed=seed + 3)
    logging.info('Wrote %s.', figure)
  return record
