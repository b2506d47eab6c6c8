"""The LiBI paper's figures: Figure 1 (closed forms) and the posterior figures 2-5.

Yacoby, Pan & Doshi-Velez (2020):

- **Figure 1** (Section 3, `figure1`), all in closed form (`statistics.global_optima`):
  A, min_phi E KL(q_phi || p_B(z|x)) over diagonal B with A fixed; B, I_B(X;Z) on the same
  grid; C and D, the data distribution of the ground truth and of the ELBO's optimum when
  A is learned with B fixed (samples of N(0, A A^T + sigma^2 I)); E and F, the aggregated
  posteriors E_p(x)[p_GT(z|x)] (which is p(z)) and E_p(x)[q_phi*(z|x)] of that optimum
  (Gaussian: N(0, M C M^T + diag(v)), with M the posterior gain, C the data covariance
  and v the best mean-field variances), which does not match p(z).
- **Figures 2-5** (Appendix B, `posterior_figure`): for a trained model on LinearJTEx
  (Figures 2, 3) or CubicJTEx (4, 5), the means of q_phi_GT (q fitted with theta at the
  truth), of the true posterior p_theta_GT(z|x), of the learned q_phi and of the learned
  model's posterior p_theta(z|x) (both by self-normalised importance sampling,
  `evaluation.synthetic_run.posterior_means`), each point coloured by the angle of the z
  that generated it, so that a map that scrambles the codes shows as mixed colours; beside
  them the original z's, and the learned aggregated posterior q(z) against p(z).

Matplotlib is imported when a figure is drawn.
"""

import numpy as np
import tensorflow as tf

from brokenelbo.data import synthetic as data
from brokenelbo.evaluation import synthetic_run
from brokenelbo.statistics import global_optima

# Points drawn per scatter panel.
NUM_POINTS = 2000


def _pyplot():
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  return plt


def _gaussian_samples(covariance, num, seed):
  rng = np.random.default_rng(seed)
  return rng.multivariate_normal(np.zeros(covariance.shape[0]), covariance, size=num)


def figure1_values(seed=0):
  """The numbers behind Figure 1: the B grid, and the ground truth's and the optimum's data
  covariances and aggregated-posterior covariances (A learned, B fixed)."""
  grid = global_optima.case1_b_grid()
  data_cov = global_optima.data_covariance()
  optimum = global_optima.minimize_objective(data_cov, seed=seed)
  b, sigma2 = global_optima.B_FIXED, global_optima.SIGMA2

  def aggregated(a):
    gain, cov = global_optima.case1_posterior(b, a, sigma2)
    _, variances = global_optima.best_mean_field(np.zeros(2), cov)
    return gain @ data_cov @ gain.T + np.diag(variances)

  return dict(
      grid=grid, optimum=optimum, data_covariance=data_cov,
      learned_covariance=optimum.a @ optimum.a.T + sigma2 * np.eye(2),
      # E_p(x)[p_GT(z|x)] = p(z) exactly (C.2); the mean-field q* of the optimum:
      true_aggregated=np.eye(2), learned_aggregated=aggregated(optimum.a),
      ground_truth_objective=global_optima.objective(global_optima.A_GT, data_cov))


def figure1(seed=0):
  """Figure 1 A-F as one matplotlib figure."""
  plt = _pyplot()
  values = figure1_values(seed)
  grid = values['grid']
  figure, axes = plt.subplots(2, 3, figsize=(13, 8.2))
  extent = [grid.b22[0], grid.b22[-1], grid.b11[-1], grid.b11[0]]
  for ax, field, title in ((axes[0, 0], grid.pm, 'A: min$_\\phi$ E KL(q || p$_B$(z|x)) (nats)'),
                           (axes[1, 0], grid.mutual_information, 'B: I$_B$(X;Z) (nats)')):
    image = ax.imshow(field, extent=extent, aspect='auto', cmap='viridis')
    ax.set_xlabel('B$_{22}$')
    ax.set_ylabel('B$_{11}$')
    ax.set_title(title, fontsize=10)
    figure.colorbar(image, ax=ax)
  scatter = dict(s=3, alpha=0.4)
  panels = (
      (axes[0, 1], values['data_covariance'], 'C: p(x), ground truth\n'
       f'L = {values["ground_truth_objective"]:.3f} nats (paper 0.532)', 'x'),
      (axes[0, 2], values['learned_covariance'], 'D: p$_{\\theta^*}$(x), ELBO optimum\n'
       f'L = {values["optimum"].value:.3f} nats (paper 0.196)', 'x'),
      (axes[1, 1], values['true_aggregated'], 'E: E$_{p(x)}$[p$_{GT}$(z|x)] = p(z)', 'z'),
      (axes[1, 2], values['learned_aggregated'],
       'F: E$_{p(x)}$[q$_{\\phi^*}$(z|x)] $\\neq$ p(z)', 'z'))
  for k, (ax, covariance, title, name) in enumerate(panels):
    points = _gaussian_samples(covariance, NUM_POINTS, [seed, k])
    ax.scatter(points[:, 0], points[:, 1], color='C0' if name == 'x' else 'C1', **scatter)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel(f'{name}$_1$')
    ax.set_ylabel(f'{name}$_2$')
    limit = 3.5 * np.sqrt(max(np.diag(covariance).max(), 1. if name == 'z' else 0.))
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect('equal')
  # The x panels share their limits, as do the z panels, so that C and D, E and F compare.
  for pair in ((axes[0, 1], axes[0, 2]), (axes[1, 1], axes[1, 2])):
    limit = max(abs(v) for ax in pair for v in ax.get_xlim())
    for ax in pair:
      ax.set_xlim(-limit, limit)
      ax.set_ylim(-limit, limit)
  figure.suptitle('Case 1 (Section 3): the ELBO prefers easy posteriors over the data '
                  'distribution', fontsize=12)
  figure.tight_layout()
  return figure


def posterior_figure(panels, colours, title):
  """A posterior figure (Appendix B): one scatter per entry of `panels`.

  Args:
    panels: `list` of rows, each a `list` of (title, points `[N, 2]`) pairs.
    colours: `[N]` values in [0, 1] (the angle of each point's generating z), the colour
      of each point in every panel.
    title: the figure's title.
  """
  plt = _pyplot()
  rows, cols = len(panels), max(len(row) for row in panels)
  figure, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 4.2 * rows), squeeze=False)
  for i, row in enumerate(panels):
    for j in range(cols):
      ax = axes[i, j]
      if j >= len(row):
        ax.axis('off')
        continue
      name, points = row[j]
      ax.scatter(points[:, 0], points[:, 1], c=colours, cmap='hsv', vmin=0., vmax=1., s=6)
      ax.set_title(name, fontsize=10)
      ax.set_xlabel('z$_1$')
      ax.set_ylabel('z$_2$')
      ax.set_aspect('equal', adjustable='datalim')
  figure.suptitle(title, fontsize=12)
  figure.tight_layout()
  return figure


def angle_colours(z):
  """The angle of each z `[N, 2]`, scaled to [0, 1]."""
  return (np.arctan2(z[:, 1], z[:, 0]) + np.pi) / (2 * np.pi)


def reference_panels(dataset, index, seed=0):
  """The ground truth's half of a posterior figure on the test split of (`dataset`,
  `index`): (q_phi_GT means, p_GT(z|x) means, the generating z's), each `[N, 2]`."""
  x_train = data.synthetic('train', name=dataset, index=index)
  x, z = data.ground_truth(dataset).sample(
      data.NUM_EXAMPLES, data.dataset_seed(dataset, index, 'test'))
  model = synthetic_run.ground_truth_model(dataset)
  synthetic_run.fit_inference(model, x_train, seed=seed)
  q_means = model.posterior(tf.constant(x)).mean().numpy()[0]
  return q_means, synthetic_run.posterior_means(model, x, seed)[0], z


def learned_panels(model, restart, dataset, index, seed=0):
  """A trained model's half: (learned q_phi means, p_theta(z|x) means, samples of the
  aggregated posterior q(z)) of restart `restart` on the test split, each `[N, 2]`."""
  x = tf.constant(data.synthetic('test', name=dataset, index=index))
  posterior = model.posterior(x)
  q_means = posterior.mean().numpy()[restart]
  aggregated = posterior.sample(seed=(seed, 1)).numpy()[restart]
  return (q_means, synthetic_run.posterior_means(model, x.numpy(), seed, restarts=[restart])[0],
          aggregated)


def method_figure(reference, learned, method, dataset):
  """Figure 2-5 for one method (`'VAE'`, `'LiBI'`) on one data set."""
  q_gt, p_gt, z = reference
  q_learned, p_learned, aggregated = learned
  panels = [[('means of q$_{\\phi_{GT}}$ (q fitted to the true $\\theta$)', q_gt),
             (f'means of the learned q$_\\phi$ ({method})', q_learned),
             ('the z that generated each x', z)],
            [('means of p$_{\\theta_{GT}}$(z|x)', p_gt),
             (f'means of the learned p$_\\theta$(z|x) ({method})', p_learned),
             ('aggregated posterior q(z), one draw per x', aggregated)]]
  return posterior_figure(panels, angle_colours(z), f'{method} on {dataset}, test split '
                          '(colour: angle of the generating z)')
