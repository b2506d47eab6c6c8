"""Imports every module that registers gin configurables, and a few external ones.

Importing this module makes every name usable in a `.gin` file: the library's own
configurables (`ConvEncoder`, `PixelCNNDecoder`, `VampPrior`, `beta_vae`,
`rate_distortion_loss`, ...), the `tf.distribute` strategies under their TensorFlow names,
and Slurm's cluster resolver, so that one run can span the tasks of a Slurm job step:

  train.strategy = @tf.distribute.MultiWorkerMirroredStrategy
  MultiWorkerMirroredStrategy.cluster_resolver = @SlurmClusterResolver()

(without a resolver, `MultiWorkerMirroredStrategy` reads the cluster from `TF_CONFIG`).
"""

import gin
import tensorflow as tf

from brokenelbo.data import images  # pylint: disable=unused-import
from brokenelbo.data import mnist  # pylint: disable=unused-import
from brokenelbo.data import omniglot  # pylint: disable=unused-import
from brokenelbo.data import pipeline  # pylint: disable=unused-import
from brokenelbo.data import synthetic as synthetic_data  # pylint: disable=unused-import
from brokenelbo.evaluation import evaluate_run  # pylint: disable=unused-import
from brokenelbo.evaluation import rd_curve  # pylint: disable=unused-import
from brokenelbo.evaluation import synthetic_run  # pylint: disable=unused-import
from brokenelbo.models import decoders  # pylint: disable=unused-import
from brokenelbo.models import encoders  # pylint: disable=unused-import
from brokenelbo.models import flows  # pylint: disable=unused-import
from brokenelbo.models import marginals  # pylint: disable=unused-import
from brokenelbo.models import synthetic  # pylint: disable=unused-import
from brokenelbo.models import vae  # pylint: disable=unused-import
from brokenelbo.models.pixelcnn import network  # pylint: disable=unused-import
from brokenelbo.training import lagging  # pylint: disable=unused-import
from brokenelbo.training import libi  # pylint: disable=unused-import
from brokenelbo.training import losses  # pylint: disable=unused-import
from brokenelbo.training import objectives  # pylint: disable=unused-import
from brokenelbo.training import optimizers  # pylint: disable=unused-import
from brokenelbo.training import trainer  # pylint: disable=unused-import
from brokenelbo.visualize import grids  # pylint: disable=unused-import

# Under their public names (`tf.distribute.MultiWorkerMirroredStrategy` is a class named
# `CollectiveAllReduceStrategy`).
for _name in ('MirroredStrategy', 'OneDeviceStrategy', 'MultiWorkerMirroredStrategy'):
  gin.external_configurable(getattr(tf.distribute, _name), name=_name, module='tf.distribute')
gin.external_configurable(tf.distribute.cluster_resolver.SlurmClusterResolver,
                          name='SlurmClusterResolver', module='tf.distribute.cluster_resolver')
