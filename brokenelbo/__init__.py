"""brokenelbo: a TensorFlow Probability reproduction of *Fixing a Broken ELBO* and LiBI.

The package is layered; each layer imports only from those below it (tests/test_layering):
  errors, utils   the error types and exit statuses; files, seeds, command-line plumbing
  data            MNIST, Omniglot, the input pipeline, the LiBI paper's synthetic data
  models          encoders, decoders, marginals, flows, the PixelCNN, the VAE, the families
  statistics      estimators and closed forms: R/D/ELBO over a split, likelihood bounds,
                  mutual information, Henze-Zirkler, the two-sample statistic, LiBI's optima
  training        objectives, losses, the training loop, checkpoints, restoring a run
  evaluation      what a trained run is measured by (the information suite, LiBI's table)
  visualize       figures
  experiments     studies: the rate-distortion sweep, LiBI's table, the toy, benchmarks
  (top)           the command lines (`python -m brokenelbo.<tool>`), the gin registry
                  (`configurables`) and this module's `load_run`

#### Examples
```python
import brokenelbo
run = brokenelbo.load_run('results/mnist_rd/-+v/beta=1_anneal=0_seed=0')
run.model, run.step, run.settings['dataset']('test')
```

#### References
[1] Alemi, Poole, Fischer, Dillon, Saurous, Murphy. Fixing a Broken ELBO. ICML 2018.
[2] Yacoby, Pan, Doshi-Velez. Avoiding Problematic Global Optima of VAEs. AABI 2020.
"""

import os

# TensorFlow Probability builds on Keras 2 (`tf_keras`), and so does this package. Unless
# this is set before TensorFlow is first imported, TensorFlow also imports Keras 3 (and,
# through it, scikit-learn where installed) for `tf.keras`, which nothing here uses: a
# few seconds of every process's start. A value the user set is kept; with TensorFlow
# already imported, this changes nothing.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

__version__ = '0.1.0'


def load_run(model_dir, gin_bindings=()):
  """A trained run's model, restored from its newest checkpoint, with its step and settings.

  Works from a fresh interpreter: the gin registry (`configurables`) is imported here.
  gin's global config is replaced by the run's own (`model_dir/config.gin`, then
  `gin_bindings`) and left holding it, since the settings' functions read it (the data
  set's own bindings, for one); load another run with another call.

  Args:
    model_dir: Python `str`, a run directory written by `python -m brokenelbo.train`.
    gin_bindings: Python sequence of `str`, bindings applied after the run's config.

  Returns:
    `training.restore.RestoredRun`: `model` (the `models.vae.VAE`, or the model the run
    trained), `step` (Python `int`) and `settings` (every argument of `train`, gin
    references resolved: `settings['dataset']('test')` gives the test images).

  Raises:
    errors.UserError: if `model_dir` holds no run or no checkpoint, or a binding is bad.
    errors.RunFailed: if no checkpoint of the run reads back.
  """
  # pylint: disable=g-import-not-at-top
  import gin
  from brokenelbo import configurables  # pylint: disable=unused-import
  from brokenelbo.training import restore
  # pylint: enable=g-import-not-at-top
  gin.clear_config()
  return restore.restore_run(model_dir, gin_bindings)
