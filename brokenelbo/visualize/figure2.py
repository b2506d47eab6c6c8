"""Figure 2 of the paper: the toy model of Section 4.1, one column per fitted model."""

import os

import numpy as np


def plot_figure2(path, data, columns):
  """Draws Figure 2: one column per model, five rows.

  Rows: (i) data space `p*(x)` (bars), `g(x)` and `d(x) = sum_z e(z) d(x|z)`; (ii) latent
  space `m(z)`, `e(z)` and, shaded, `p(z*) e(z | z*)` for `z* = 0, 1` (they add up to
  `e(z)`); (iii)-(v) `e(z|x)`, `d(x|z)` and `p(x'|x)`, each with the conditioning variable
  on the horizontal axis (every column sums to one).

  Args:
    path: Python `str`, the PNG to write.
    data: a `ToyData`.
    columns: Python `list` of `(title, quantities)` with `quantities` as returned by
      `toy_quantities` for a single model (as numpy arrays).
  """
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top

  colors = ('tab:blue', 'tab:orange')
  num_bins = data.probs.shape[0]
  figure, axes = plt.subplots(5, len(columns), figsize=(4.2 * len(columns), 17.),
                              squeeze=False)
  bins = np.arange(num_bins)
  for col, (title, q) in enumerate(columns):
    latents = np.arange(q['marginal'].shape[-1])
    ax = axes[0, col]
    ax.bar(bins, data.probs, width=.9, color='0.8', label='p*(x)')
    ax.plot(bins, q['model_probs'], 'k.-', label='g(x)')
    ax.plot(bins, q['decoded_probs'], '--', color='tab:red', label='d(x)')
    ax.set_xlabel('x')
    ax.set_title(f"{title}\nR = {q['rate']:.4f}, D = {q['distortion']:.4f}\n"
                 f"KL(p*||g) = {max(q['kl_data_to_model'], 0.):.1e}, "
                 f"sep = {q['class_separation']:.3f}", fontsize=10)
    ax = axes[1, col]
    for c in range(2):
      ax.fill_between(latents, data.latent_probs[c] * q['class_posteriors'][c], step='mid',
                      color=colors[c], alpha=.45, label=f'p(z*={c}) e(z|z*={c})')
    ax.step(latents, q['aggregate_posterior'], 'k', where='mid', label='e(z)')
    ax.plot(latents, q['marginal'], 'o', mfc='none', color='tab:red', ms=4, label='m(z)')
    ax.set_xlabel('z')
    for row, (key, label, xlabel, ylabel) in enumerate(
        (('encoder', 'e(z|x)', 'x', 'z'), ('decoder', 'd(x|z)', 'z', 'x'),
         ('reconstruction', "p(x'|x)", 'x', "x'")), start=2):
      ax = axes[row, col]
      ax.imshow(q[key].T, origin='lower', cmap='Greys', vmin=0., aspect='equal',
                interpolation='nearest')
      ax.set_xlabel(xlabel)
      ax.set_ylabel(ylabel)
      ax.set_title(label, fontsize=10)
  for row in (0, 1):
    axes[row, 0].legend(fontsize=8, loc='upper left')
  figure.tight_layout()
  figure.savefig(path + '.tmp.png', dpi=90)  # Crash-safe: written whole, then renamed.
  os.replace(path + '.tmp.png', path)
  plt.close(figure)
