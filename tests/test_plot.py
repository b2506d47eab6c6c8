"""Tests of Figure 3 from a sweep CSV: frontier and hull against brute force, files, errors."""

import csv
import itertools
import os

from matplotlib import image
from matplotlib.figure import Figure
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from brokenelbo import errors
from brokenelbo.visualize import grids
from brokenelbo.visualize import information
from brokenelbo.visualize import rd_plane as plot

tfd = tfp.distributions

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLUMNS = ('family', 'encoder', 'decoder', 'marginal', 'dataset', 'beta', 'anneal', 'seed',
           'epochs', 'rate', 'distortion', 'elbo', 'train_rate', 'train_distortion',
           'train_elbo', 'run_dir')

# Dominated points, a tie in R, a tie in D, duplicates, and a collinear frontier point.
HAND_POINTS = [(0., 10.), (1., 8.), (1., 9.), (2., 8.), (1., 8.), (3., 3.), (4., 3.),
               (4., 2.), (5., 1.), (6., 1.), (2., 12.), (0., 10.), (5., 1.)]
HAND_FRONTIER = [(0., 10.), (1., 8.), (3., 3.), (4., 2.), (5., 1.)]
# (1, 8) lies above the chord from (0, 10) to (3, 3); (4, 2) on the one to (5, 1).
HAND_HULL = [(0., 10.), (3., 3.), (5., 1.)]


def _brute_force_frontier(points):
  """The non-dominated points, each once, sorted: straight from the definition, O(n^2)."""
  points = [tuple(p) for p in np.asarray(points).tolist()]
  kept = {p for p in points
          if not any(q[0] <= p[0] and q[1] <= p[1] and q != p for q in points)}
  return np.array(sorted(kept), np.float64).reshape([-1, 2])


def _random_points(seed):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(1, 60))
  if seed % 2:  # Small integers: many ties and duplicates.
    return rng.integers(0, 8, size=[n, 2]).astype(np.float64)
  return rng.exponential(10., size=[n, 2])


def _row(family, rate, distortion, dataset='static_mnist', anneal=0., beta=1., seed=0):
  return dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
              dataset=dataset, beta=beta, anneal=anneal, seed=seed, epochs=100., rate=rate,
              distortion=distortion, elbo=-(rate + distortion), train_rate=rate + 1.,
              train_distortion=distortion - 3., train_elbo=-(rate + distortion - 2.),
              run_dir=f'runs/{family}_beta{beta}_anneal{anneal}')


def _sweep_rows():
  """One run per family, and four more (two annealed): R and D spread over the plane."""
  rows = [_row(family, rate=5. + 7. * i, distortion=90. - 6. * i + (i % 3) * 4.)
          for i, family in enumerate(plot.FAMILIES)]
  rows += [_row('-+v', 2., 81.5, anneal=10.), _row('---', 30., 60., anneal=5.),
           _row('+++', 60., 25., beta=.5), _row('--v', 95., 12., beta=.1)]
  return rows


def _write_csv(path, rows, columns=COLUMNS):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.DictWriter(f, fieldnames=columns, extrasaction='ignore')
    writer.writeheader()
    writer.writerows(rows)
  return str(path)


@pytest.fixture
def run_cli(commands):
  """`run_cli(*args)`: `python -m brokenelbo.plot *args`, through conftest's `commands` (one
  server process for the module instead of a process start per command)."""
  return lambda *args: commands('plot', *args)


def _errors(result):
  return [line for line in result.stderr.splitlines() if line.startswith('error: ')]


def test_pareto_frontier_of_hand_made_points():
  np.testing.assert_array_equal(plot.pareto_frontier(HAND_POINTS), HAND_FRONTIER)
  np.testing.assert_array_equal(plot.pareto_frontier(HAND_POINTS[::-1]), HAND_FRONTIER)
  np.testing.assert_array_equal(plot.pareto_frontier([(2., 3.)] * 3), [(2., 3.)])
  assert plot.pareto_frontier(np.zeros([0, 2])).shape == (0, 2)


def test_frontier_runs_are_the_runs_at_the_frontier_points():
  runs = [plot.Point('---', '-', '-', '-', 'static_mnist', 1., 0., 0, r, d, f'run{i}')
          for i, (r, d) in enumerate(HAND_POINTS)]
  chosen = plot.frontier_runs(runs)
  assert [(run.rate, run.distortion) for run in chosen] == HAND_FRONTIER
  # Of the runs at one frontier point, the first in the file: (0, 10), (1, 8), (5, 1) twice.
  assert [run.run_dir for run in chosen] == ['run0', 'run1', 'run5', 'run7', 'run8']


@pytest.mark.parametrize('seed', range(20))
def test_pareto_frontier_matches_brute_force(seed):
  points = _random_points(seed)
  frontier = plot.pareto_frontier(points)
  np.testing.assert_array_equal(frontier, _brute_force_frontier(points))
  assert np.all(np.diff(frontier[:, 0]) > 0.) and np.all(np.diff(frontier[:, 1]) < 0.)


def test_lower_convex_hull_of_hand_made_points():
  np.testing.assert_array_equal(plot.lower_convex_hull(HAND_POINTS), HAND_HULL)
  np.testing.assert_array_equal(plot.lower_convex_hull(HAND_FRONTIER), HAND_HULL)
  np.testing.assert_array_equal(plot.lower_convex_hull([(1., 2.)]), [(1., 2.)])
  # Three collinear frontier points: only the ends are vertices.
  np.testing.assert_array_equal(plot.lower_convex_hull([(0., 2.), (1., 1.), (2., 0.)]),
                                [(0., 2.), (2., 0.)])


@pytest.mark.parametrize('seed', range(20))
def test_lower_convex_hull_supports_the_frontier(seed):
  frontier = _brute_force_frontier(_random_points(seed))
  hull = plot.lower_convex_hull(frontier)
  # Vertices are frontier points, from its first to its last.
  assert {tuple(v) for v in hull} <= {tuple(p) for p in frontier}
  np.testing.assert_array_equal(hull[[0, -1]], frontier[[0, -1]])
  if len(hull) < 2:
    assert len(frontier) == 1
    return
  slopes = np.diff(hull[:, 1]) / np.diff(hull[:, 0])
  assert np.all(np.diff(slopes) > 0.), slopes  # Convex, no collinear vertex.
  for (r0, d0), slope in zip(hull[:-1], slopes):
    on_line = d0 + slope * (frontier[:, 0] - r0)
    assert np.all(frontier[:, 1] >= on_line - 1e-9 * (1. + np.abs(on_line)))


def test_best_negative_elbo_and_the_entropy_line(tmp_path):
  rows = [_row('-+v', 10., 80.), _row('---', 30., 55.), _row('+-+', 50., 36.),
          _row('++v', 4., 95.)]
  runs = plot.read_results(_write_csv(tmp_path / 'sweep.csv', rows))
  assert plot.best_negative_elbo(runs) == 85.  # 30 + 55, below 90, 86 and 99.
  ax = Figure().subplots()
  plot.plot_all_runs(ax, runs)
  lines = [line for line in ax.lines if line.get_label().startswith('D = H - R')]
  assert len(lines) == 1
  np.testing.assert_allclose(lines[0].get_xydata(), [(0., 85.), (85., 0.)])


def test_read_results_keeps_families_as_strings_and_reads_the_split(tmp_path):
  rows = _sweep_rows()
  path = _write_csv(tmp_path / 'sweep.csv', rows)
  runs = plot.read_results(path)
  assert [run.family for run in runs] == [row['family'] for row in rows]
  assert runs[0] == plot.Point('---', '-', '-', '-', 'static_mnist', 1., 0., 0, 5., 90.,
                             'runs/---_beta1.0_anneal0.0')
  train = plot.read_results(path, split='train')
  assert (train[3].rate, train[3].distortion) == (rows[3]['rate'] + 1.,
                                                  rows[3]['distortion'] - 3.)


def test_read_results_selects_a_dataset_and_leaves_out_diverged_runs(tmp_path):
  rows = [_row('-+-', 10., 80.), _row('---', 30., 55., dataset='omniglot'),
          _row('+--', float('nan'), 36.)]
  path = _write_csv(tmp_path / 'sweep.csv', rows)
  with pytest.raises(errors.UserError, match='mix the datasets'):
    plot.read_results(path)
  assert [run.family for run in plot.read_results(path, dataset='omniglot')] == ['---']
  assert [run.family for run in plot.read_results(path, dataset='static_mnist')] == ['-+-']
  with pytest.raises(errors.UserError, match='no finite run on dataset'):
    plot.read_results(path, dataset='cifar')


def test_group_frontiers(tmp_path):
  rows = [_row('---', 10., 80.), _row('-+v', 20., 50.), _row('-++', 30., 60.),
          _row('+--', 5., 90.), _row('++v', 25., 40.)]
  runs = plot.read_results(_write_csv(tmp_path / 'sweep.csv', rows))
  encoders = plot.group_frontiers(runs, 'encoder')
  assert list(encoders) == ['-', '+']
  np.testing.assert_array_equal(encoders['-'], [(10., 80.), (20., 50.)])
  np.testing.assert_array_equal(encoders['+'], [(5., 90.), (25., 40.)])
  marginals = plot.group_frontiers(runs, 'marginal')
  assert list(marginals) == ['-', '+', 'v']
  np.testing.assert_array_equal(marginals['v'], [(20., 50.), (25., 40.)])


def test_annealed_runs_are_hollow(tmp_path):
  rows = [_row('-+v', 10., 80.), _row('-+v', 12., 70., anneal=10.)]
  runs = plot.read_results(_write_csv(tmp_path / 'sweep.csv', rows))
  ax = Figure().subplots()
  handles = plot.scatter_runs(ax, runs, lambda r, d: d)
  assert [h.get_label() for h in handles] == ['-+v', 'no annealing', 'KL annealing']
  filled, hollow = ax.collections
  np.testing.assert_array_equal(filled.get_offsets(), [(10., 80.)])
  np.testing.assert_array_equal(hollow.get_offsets(), [(12., 70.)])
  assert filled.get_facecolors()[0, 3] == 1.
  assert hollow.get_facecolors().shape[0] == 0 or hollow.get_facecolors()[0, 3] == 0.


def _small_figure():
  figure = Figure(figsize=(2., 2.))
  figure.subplots().plot([0., 1.], [1., 0.])
  return figure


def test_write_figures_checks_every_path_before_drawing(tmp_path):
  (tmp_path / 'b.pdf').write_text('old')
  never = lambda: pytest.fail('drew a figure although a file exists')
  with pytest.raises(errors.UserError, match='b.pdf'):
    plot.write_figures(dict(a=never, b=never), str(tmp_path), formats=('png', 'pdf'))
  assert sorted(os.listdir(tmp_path)) == ['b.pdf']
  written = plot.write_figures(dict(a=_small_figure, b=_small_figure), str(tmp_path),
                               suffix='_train', formats=('png', 'pdf'), overwrite=True)
  assert written == [str(tmp_path / name) for name in
                     ('a_train.png', 'a_train.pdf', 'b_train.png', 'b_train.pdf')]
  assert (tmp_path / 'b.pdf').read_text() == 'old'
  plot.write_figures(dict(b=_small_figure), str(tmp_path), formats=('pdf',), overwrite=True)
  assert (tmp_path / 'b.pdf').read_bytes().startswith(b'%PDF')
  assert not [name for name in os.listdir(tmp_path) if 'tmp' in name]


def _assert_image(path):
  pixels = image.imread(path)
  assert pixels.ndim == 3 and pixels.shape[0] >= 300 and pixels.shape[1] >= 400
  assert np.ptp(pixels[..., :3]) > .5  # Not blank: dark marks on white.
  assert len(np.unique(pixels[..., :3].reshape([-1, 3]), axis=0)) > 20  # Many colours.


def test_command_line_writes_the_figures_and_refuses_to_overwrite(run_cli, tmp_path):
  results = _write_csv(tmp_path / 'sweep.csv', _sweep_rows())
  output_dir = tmp_path / 'figures'
  args = [f'--results={results}', f'--output_dir={output_dir}', '--pdf']
  result = run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  names = ['figure3a.png', 'figure3a.pdf', 'figure3b.png', 'figure3b.pdf']
  assert sorted(os.listdir(output_dir)) == sorted(names)
  _assert_image(output_dir / 'figure3a.png')
  _assert_image(output_dir / 'figure3b.png')
  assert (output_dir / 'figure3a.pdf').read_bytes().startswith(b'%PDF')
  before = {name: (output_dir / name).read_bytes() for name in names}

  result = run_cli(*args)
  assert result.returncode == 2
  lines = _errors(result)
  assert len(lines) == 1 and '--overwrite' in lines[0], result.stderr
  assert {name: (output_dir / name).read_bytes() for name in names} == before

  # The train split's figures sit beside the test split's.
  result = run_cli(f'--results={results}', f'--output_dir={output_dir}', '--split=train')
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(output_dir)) == sorted(
      names + ['figure3a_train.png', 'figure3b_train.png'])
  assert {name: (output_dir / name).read_bytes() for name in names} == before


def _bad_csvs(tmp_path):
  rows = _sweep_rows()
  good = _write_csv(tmp_path / 'good.csv', rows)
  text = open(good, encoding='utf-8').read()
  lines = text.splitlines(keepends=True)
  cases = dict(
      empty=('', 'empty'),
      header_only=(lines[0], 'no runs'),
      missing_column=(None, 'distortion'),
      not_a_number=(text.replace(',90.0,', ',ninety,', 1), 'ninety'),
      short_row=(lines[0] + lines[1].replace(',runs/', '\n', 1), 'fields'),
      unknown_family=(text.replace('--v,-,-,v', '-x-,-,x,-', 1), "'-x-'"),
      wrong_elbo=(text.replace(',-95.0,', ',95.0,', 1), 'elbo'),
  )
  for name, (content, message) in cases.items():
    if content is None:
      _write_csv(tmp_path / f'{name}.csv', rows, [c for c in COLUMNS if c != 'distortion'])
    else:
      (tmp_path / f'{name}.csv').write_text(content, encoding='utf-8')
    yield name, str(tmp_path / f'{name}.csv'), message


def test_bad_results_are_user_errors(tmp_path):
  with pytest.raises(errors.UserError, match='cannot read'):
    plot.read_results(str(tmp_path / 'missing.csv'))
  names = []
  for name, path, message in _bad_csvs(tmp_path):
    with pytest.raises(errors.UserError, match=message):
      plot.read_results(path)
    names.append(name)
  assert len(names) == 7


@pytest.mark.parametrize('name', ['missing', 'not_a_number'])
def test_command_line_errors_are_one_line(run_cli, tmp_path, name):
  paths = {case: path for case, path, _ in _bad_csvs(tmp_path)}
  results = paths.get(name, str(tmp_path / 'missing.csv'))
  result = run_cli(f'--results={results}', f'--output_dir={tmp_path / "figures"}')
  assert result.returncode == 2
  lines = _errors(result)
  assert len(lines) == 1, result.stderr
  assert ('missing.csv' if name == 'missing' else 'ninety') in lines[0]
  assert not os.path.exists(tmp_path / 'figures')


def test_families_are_those_with_a_config():
  configs = {name[:-len('.gin')] for name in os.listdir(os.path.join(REPO, 'configs'))
             if name.endswith('.gin') and set(name[:-len('.gin')]) <= set('-+v')}
  assert set(plot.FAMILIES) == configs and len(plot.FAMILIES) == 12
  assert plot.FAMILIES == tuple(''.join(p) for p in itertools.product('-+', '-+', '-+v'))


# The information suite's columns of a sweep CSV (`experiments.sweep`), after COLUMNS' own.
SUITE_COLUMNS = COLUMNS[:-1] + (
    'nll_k1', 'nll_k1_stderr', 'mutual_information', 'mutual_information_stderr',
    'marginal_kl', 'log_num_examples', 'generative_e', 'generative_g', 'run_dir')


def _suite_row(family, beta, rate, distortion, mutual, anneal=0., seed=0):
  """A row with the suite: I_e = `mutual`, KL = R - I_e, E and G either side of I_e."""
  row = _row(family, rate, distortion, anneal=anneal, beta=beta, seed=seed)
  row.update(nll_k1=rate + distortion, nll_k1_stderr=.5, mutual_information=mutual,
             mutual_information_stderr=.1, marginal_kl=rate - mutual,
             log_num_examples=np.log(500.), generative_e=mutual - 1., generative_g=mutual + 2.)
  return row


def _information_rows():
  """`---` at three betas (written out of order) and annealed at two; `-+v` with two seeds
  at beta 1; `+--` without the suite, at the best -ELBO of all (20 + 60 = 80)."""
  return [_suite_row('---', 10., 1., 120., .9), _suite_row('---', .1, 40., 70., 6.),
          _suite_row('---', 1., 12., 85., 5.5),
          _suite_row('---', 1., 10., 88., 4., anneal=5.),
          _suite_row('---', .1, 30., 75., 6.2, anneal=5.),
          _suite_row('-+v', 1., 3., 84., 2.), _suite_row('-+v', 1., 5., 82., 3., seed=1),
          _suite_row('-+v', .5, 8., 81., 4.5),
          dict(_row('+--', 20., 60.), nll_k1='', mutual_information='', marginal_kl='',
               log_num_examples='', generative_e='', generative_g='')]


def _lines(ax):
  return {line.get_label(): line for line in ax.lines}


def test_information_figure_draws_each_familys_numbers_against_beta(tmp_path):
  path = _write_csv(tmp_path / 'sweep.csv', _information_rows(), SUITE_COLUMNS)
  runs = plot.read_results(path, extra_columns=information.COLUMNS)
  assert runs[-1].extra == {} and runs[0].extra['generative_g'] == 2.9
  assert [run.family for run in information.suite_runs(runs)] == ['---'] * 5 + ['-+v'] * 3
  figure = information.information_figure(runs, 'static_mnist, test split')
  panels = [ax for ax in figure.axes if ax.get_visible() and ax.get_title()]
  assert [ax.get_title().split(':')[0] for ax in panels] == ['---', '-+v']  # No `+--`.
  plain, pixel = panels
  assert plain.get_xscale() == 'log' and plain.get_yscale() == 'symlog'
  lines = _lines(plain)
  # I_e of the runs without annealing, in the order of beta: 6 (0.1), 5.5 (1), 0.9 (10).
  np.testing.assert_array_equal(lines['mutual_information'].get_xydata(),
                                [(.1, 6.), (1., 5.5), (10., .9)])
  np.testing.assert_array_equal(lines['mutual_information, anneal 5'].get_xydata(),
                                [(.1, 6.2), (1., 4.)])
  np.testing.assert_array_equal(lines['rate'].get_ydata(), [40., 12., 1.])
  np.testing.assert_allclose(lines['marginal_kl'].get_ydata(), [34., 6.5, .1])
  # H = 80, the best -ELBO of the sweep: the `+--` run's, which has no suite.
  np.testing.assert_allclose(lines['h_minus_d'].get_ydata(), [80. - 70., 80. - 85., 80. - 120.])
  np.testing.assert_allclose(lines['log_num_examples'].get_ydata(), [np.log(500.)] * 2)
  assert lines['log_num_examples'].get_linestyle() == '--'
  # Annealed runs: another line style, hollow markers.
  assert lines['rate'].get_linestyle() == '-' and lines['rate'].get_markerfacecolor() != 'none'
  assert lines['rate, anneal 5'].get_linestyle() != '-'
  assert lines['rate, anneal 5'].get_markerfacecolor() == 'none'
  # The band [E, G]: its outline runs along E below and G above, at each beta.
  band = {c.get_label(): c for c in plain.collections}['generative']
  vertices = band.get_paths()[0].vertices
  for beta, mutual in ((.1, 6.), (1., 5.5), (10., .9)):
    at = vertices[np.isclose(vertices[:, 0], beta), 1]
    assert np.isclose(at.min(), mutual - 1.) and np.isclose(at.max(), mutual + 2.)
  # Two seeds at beta 1: the line goes through their mean, each run adds a dot.
  np.testing.assert_array_equal(_lines(pixel)['mutual_information'].get_xydata(),
                                [(.5, 4.5), (1., 2.5)])
  dots = [c.get_offsets() for c in pixel.collections if len(c.get_offsets()) == 3]
  assert any(np.array_equal(np.sort(d[:, 1]), [2., 3., 4.5]) for d in dots)
  legend = [text.get_text() for text in figure.legends[0].get_texts()]
  assert any(label.startswith('H - D, H = best -ELBO = 80.00') and 'from above' in label
             for label in legend)
  assert 'no annealing' in legend and 'KL annealing, 5 epochs' in legend


def test_information_figure_reads_suite_cells_strictly(tmp_path):
  rows = _information_rows()
  rows[0]['mutual_information'] = 'lots'
  path = _write_csv(tmp_path / 'sweep.csv', rows, SUITE_COLUMNS)
  plot.read_results(path)  # Not asked for: not read.
  with pytest.raises(errors.UserError, match="line 2: mutual_information is not a number: 'lots'"):
    plot.read_results(path, extra_columns=information.COLUMNS)


def test_command_line_writes_the_information_figure_or_skips_it(run_cli, tmp_path):
  results = _write_csv(tmp_path / 'sweep.csv', _information_rows(), SUITE_COLUMNS)
  output_dir = tmp_path / 'figures'
  args = [f'--results={results}', f'--output_dir={output_dir}']
  result = run_cli(*args)
  assert result.returncode == 0, result.stderr[-3000:]
  assert sorted(os.listdir(output_dir)) == ['figure3a.png', 'figure3b.png', 'information.png']
  _assert_image(output_dir / 'information.png')
  before = (output_dir / 'information.png').read_bytes()
  # Not replaced unasked, like every figure; replaced with --overwrite.
  (output_dir / 'figure3a.png').unlink()
  (output_dir / 'figure3b.png').unlink()
  result = run_cli(*args)
  assert result.returncode == 2 and _errors(result) == [
      f'error: {output_dir / "information.png"} exist; pass --overwrite to replace them']
  assert sorted(os.listdir(output_dir)) == ['information.png']
  assert (output_dir / 'information.png').read_bytes() == before
  assert run_cli(*args, '--overwrite').returncode == 0
  # A CSV without the suite's columns (written before the suite), or with them all empty:
  # Figure 3 alone, and a note.
  rows = [dict(row, mutual_information='') for row in _information_rows()]
  for name, csv_rows, columns in (('old', _sweep_rows(), COLUMNS),
                                  ('empty', rows, SUITE_COLUMNS)):
    results = _write_csv(tmp_path / f'{name}.csv', csv_rows, columns)
    result = run_cli(f'--results={results}', f'--output_dir={tmp_path / name}')
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(os.listdir(tmp_path / name)) == ['figure3a.png', 'figure3b.png']
    notes = [line for line in result.stderr.splitlines() if line.startswith('note: ')]
    assert len(notes) == 1 and 'no information.png' in notes[0] and not _errors(result)


def test_figure5_takes_every_family_at_the_beta_in_order_and_names_the_missing(tmp_path):
  from brokenelbo import plot as plot_cli  # pylint: disable=g-import-not-at-top

  def run(family, beta, anneal=0., checkpoint=True):
    run_dir = tmp_path / f'{family}_{beta}_{anneal}'
    run_dir.mkdir()
    if checkpoint:
      (run_dir / 'checkpoint').write_text('')
    return plot.Point(family, family[0], family[1], family[2], 'static_mnist', beta, anneal,
                    0, 1., 2., str(run_dir))

  runs = [run('++v', 1.), run('---', 1.), run('-+v', 0.1), run('-+v', 1., anneal=0.5),
          run('--v', 1.)]
  chosen, missing = plot_cli.figure5_runs(runs, 1.)
  # The families' own order, whatever the CSV's; annealed and other-beta runs left out.
  assert [r.family for r in chosen] == ['---', '--v', '++v']
  assert missing == ['--+', '-+-', '-++', '-+v', '+--', '+-+', '+-v', '++-', '+++']
  with pytest.raises(errors.UserError, match='no run at beta 2 without annealing'):
    plot_cli.figure5_runs(runs, 2.)
  with pytest.raises(errors.UserError, match='no checkpoint'):
    plot_cli.figure5_runs([run('+++', 1., checkpoint=False)], 1.)


class _FakeVAE:
  """Parts over 20x24 images (a test double): e(z|x) = m(z) = N(0, I_2), d(x|z) = fair coins."""

  def __init__(self):
    self.encoder = lambda x: tfd.MultivariateNormalDiag(tf.zeros([tf.shape(x)[0], 2]))
    self.decoder = lambda z: tfd.Independent(
        tfd.Bernoulli(logits=tf.zeros([tf.shape(z)[0], 20, 24, 1]), dtype=tf.float32), 3)

  def marginal_distribution(self):
    return tfd.MultivariateNormalDiag(tf.zeros([2]))


def test_grids_take_the_images_size():
  images = np.ones([3, 20, 24, 1], np.float32)
  recon, generated = grids.grid_arrays(_FakeVAE(), images, num_decodes=4)
  assert recon.shape == (3, 5, 20, 24, 1) and generated.shape == (3, 4, 20, 24, 1)
  np.testing.assert_array_equal(recon[:, 0], images)  # Each row starts with its input.
