"""Why the VAE shrinks A on the LiBI paper's Gaussian data (Yacoby et al. 2020, App. E):
q's initial scale against the data's noise.

The Gaussian data set has noise variance 1e-6 per coordinate, and `SyntheticVAE` starts q
at scale 1 (its log-scale read-out bias 0). The first distortion is then about 5e6 nats,
whose gradient shrinks A far faster than Adam (about one learning rate per step) brings q's
scale down. The script trains the package's model (10 restarts, full batch, Adam at the
paper's learning rate 0.01, -ELBO) from the same initial parameters twice: q's log-scale
bias at 0 (the package's default) and at log(1e-3), and prints -ELBO, R, the mean singular
values of A (identifiable: cov(x) = A^T A + noise) and q's scale along the way.

  python scripts/libi_gaussian_init.py [STEPS]   # default 3000
"""
import sys
import numpy as np
import tensorflow as tf
from brokenelbo.data import synthetic as data
from brokenelbo.models import synthetic
from brokenelbo.utils import seeds

STEPS = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
x = tf.constant(data.synthetic('train', name='gaussian'), tf.float32)
truth = data.ground_truth('gaussian')
sv_true = np.linalg.svd(np.asarray(truth.a), compute_uv=False)
for init in (0., np.log(1e-3)):
  vae = synthetic.SyntheticVAE('gaussian', restarts=10, seed=0)
  if init:
    vae.assign(phi={'log_scale_bias': np.full([2], init)})
  opt = tf.keras.optimizers.Adam(0.01)
  variables = list(vae.trainable_variables)

  @tf.function
  def step(t):
    with tf.GradientTape() as tape:
      rate, distortion = vae.rate_distortion(x, seeds.step_seed(0, t))
      loss = tf.reduce_mean(rate + distortion)
    opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return tf.reduce_mean(rate, axis=-1), tf.reduce_mean(distortion, axis=-1)

  log = []
  for t in range(STEPS):
    r, d = step(tf.constant(t))
    if t in (0, 10, 100, 300, 1000, STEPS - 1):
      a = vae.theta_params()['a'].numpy()
      sv = np.linalg.svd(a, compute_uv=False).mean(0)
      sigma = float(np.exp(vae.phi_params()['log_scale_bias'].numpy()).mean())
      log.append(f'  step {t:5d}: -ELBO {float(np.mean(r + d)):12.2f} R {float(np.mean(r)):7.2f} '
                 f'sv(A) {np.round(sv, 3)} q sigma(bias) {sigma:.2e}')
  print(f'q log-scale bias at start {init:.2f} (true sv(A) {np.round(sv_true, 3)}):')
  print('\n'.join(log), flush=True)
