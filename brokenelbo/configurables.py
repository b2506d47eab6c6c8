"""Imports every module that registers gin configurables, and a few external ones.

Importing this module makes every name usable in a `.gin` file: the library's own
configurables (`ConvEncoder`, `PixelCNNDecoder`, `VampPrior`, `beta_vae`, ...) and the
`tf.distribute` strategies under their TensorFlow names.
"""

import gin
import tensorflow as tf

from brokenelbo import data  # pylint: disable=unused-import
from brokenelbo import decoders  # pylint: disable=unused-import
from brokenelbo import encoders  # pylint: disable=unused-import
from brokenelbo import flows  # pylint: disable=unused-import
from brokenelbo import marginals  # pylint: disable=unused-import
from brokenelbo import model  # pylint: disable=unused-import
from brokenelbo import objectives  # pylint: disable=unused-import
from brokenelbo import optimizers  # pylint: disable=unused-import
from brokenelbo import pixelcnn  # pylint: disable=unused-import
from brokenelbo import training  # pylint: disable=unused-import

for _strategy in (tf.distribute.MirroredStrategy, tf.distribute.OneDeviceStrategy):
  gin.external_configurable(_strategy, module='tf.distribute')

