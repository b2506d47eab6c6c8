"""Evaluates a restored run on a whole split and records the result.

Rate, distortion and ELBO (nats per example, whole split, averaged over `num_z_samples`
draws z ~ e(z|x) per example), and the information suite (`suite`: NLL_K, I_e, the
marginal gap, active units, E and G), are the run's evaluation record of that split
(`training.run_record`: `evaluation.json`, a new evaluation of the split replacing the
last) and TensorBoard scalars `evaluate/<split>/<name>`. With one z sample the numbers
equal those of the run's own final evaluation on that split (same seeds). Nothing is drawn
here: the `evaluate` command draws the Figure 4-style grids (`visualize.grids.figure4_grids`).
"""

import gin
import tensorflow as tf

from brokenelbo import domains
from brokenelbo.evaluation import suite
from brokenelbo.statistics import elbo
from brokenelbo.training import run_dir
from brokenelbo.training import run_record
from brokenelbo.training import summaries


@gin.configurable(denylist=['run', 'model_dir', 'split'])
@domains.checked(num_z_samples=domains.POSITIVE_INT, batch_size=domains.POSITIVE_INT,
                 max_examples=domains.optional(domains.POSITIVE_INT))
def evaluate_run(run, model_dir, split='test', num_z_samples=1, batch_size=500,
                 max_examples=None, information=suite.information_suite):
  """Evaluates a restored run on a whole split and records the result.

  Args:
    run: `restore.RestoredRun`, the run (from `restore.restore_run(model_dir)`).
    model_dir: Python `str`, the run's directory (a flag, not gin-bindable).
    split: Python `str`, the split to evaluate (a flag).
    num_z_samples: Python `int`, draws z ~ e(z|x) per example (1: as in training).
    batch_size: Python `int`, evaluation batch.
    max_examples: Python `int` or `None` (the whole split), evaluate the first examples.
    information: `None`, or `information(model, images, seed) -> {name: number}` (the
      default `suite.information_suite`: likelihood bounds, mutual information, marginal
      gap, active units, generative bounds), computed on the same examples and added to
      the record.

  Returns:
    The record, as written to `evaluation.json`.

  Raises:
    UserError: if another process (training) holds the run's lock.
  """
  with run_dir.RunLock(model_dir):  # One writer of the run at a time.
    images = evaluation_images(run, split, max_examples)
    seed = run.settings['seed']
    # The same seed as the run's own evaluations: one z sample reproduces them exactly.
    evaluate = elbo.make_evaluate(run.model, batch_size, seed + 1, num_samples=num_z_samples)
    result = evaluate(images)
    if information is not None:
      result.update(information(run.model, images, seed + 1))
    record = dict(step=run.step, epoch=run.step / run.steps_per_epoch, split=split,
                  num_examples=int(images.shape[0]), num_z_samples=num_z_samples, **result)
    run_record.write_evaluation(model_dir, split, record)
    write_scalars(model_dir, run.step, f'evaluate/{split}', result)
  return record


def write_scalars(model_dir, step, tag, result):
  """The numbers of `result` as TensorBoard scalars `<tag>/<name>` at `step` in
  `model_dir`."""
  writer = tf.summary.create_file_writer(model_dir)
  summaries.scalar_summaries(writer, step, tag, {
      name: value for name, value in result.items() if isinstance(value, (int, float))})
  writer.close()


def evaluation_images(run, split, max_examples=None):
  """The images `evaluate_run` evaluates: the first `max_examples` of `split`."""
  return run.settings['dataset'](split)[:max_examples]
