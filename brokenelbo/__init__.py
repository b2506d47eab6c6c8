"""brokenelbo: a TensorFlow Probability reproduction of *Fixing a Broken ELBO*.

Alemi, Poole, Fischer, Dillon, Saurous, Murphy. "Fixing a Broken ELBO". ICML 2018.
https://arxiv.org/abs/1711.00464
"""

import os

# TensorFlow Probability builds on Keras 2 (`tf_keras`), and so does this package. Unless
# this is set before TensorFlow is first imported, TensorFlow also imports Keras 3 (and,
# through it, scikit-learn where installed) for `tf.keras`, which nothing here uses: a
# few seconds of every process's start. A value the user set is kept; with TensorFlow
# already imported, this changes nothing.
os.environ.setdefault('TF_USE_LEGACY_KERAS', '1')

__version__ = '0.1.0'
