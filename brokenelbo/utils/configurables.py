"""Imports every module that registers gin configurables, and a few external ones.

Importing this module makes every name usable in a `.gin` file: the library's own
configurables (`ConvEncoder`, `PixelCNNDecoder`, `VampPrior`, `beta_vae`,
`rate_distortion_loss`, ...) and the `tf.distribute` strategies under their TensorFlow names.
"""

import gin
import tensorflow as tf

from brokenelbo import data  # pylint: disable=unused-import
from brokenelbo.evaluation import evaluate_run  # pylint: disable=unused-import
from brokenelbo.models import decoders  # pylint: disable=unused-import
from brokenelbo.models import encoders  # pylint: disable=unused-import
from brokenelbo.models import flows  # pylint: disable=unused-import
from brokenelbo.models import marginals  # pylint: disable=unused-import
from brokenelbo.models import vae  # pylint: disable=unused-import
from brokenelbo.models.pixelcnn import network  # pylint: disable=unused-import
from brokenelbo.training import losses  # pylint: disable=unused-import
from brokenelbo.training import objectives  # pylint: disable=unused-import
from brokenelbo.training import optimizers  # pylint: disable=unused-import
from brokenelbo.training import trainer  # pylint: disable=unused-import

for _strategy in (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy):
  gin.external_configurable(_strategy, module='tf.distribute')
