r"""Table 1 of Yacoby, Pan & Doshi-Velez (2020): five methods on four synthetic data sets.

`python -m brokenelbo.libi` runs it, by the paper's protocol (Appendix E, "Training and
Model Selection"):

1. For each data set of each type (`data.synthetic`, `index`), method and setting of its
   grid, train 10 random restarts together (`models.synthetic.SyntheticVAE`) with the
   method's config (`configs/libi/<method>.gin`).
2. Keep the restart that its method's own objective prefers on the validation split
   (`validation_objective`): the ELBO (VAE, lagging inference networks), -(D + beta R) at
   the final beta (beta-VAEs), L_64 (LiBI, as between its repeats): one model per data set.
3. Evaluate it on the test split: the log-likelihood by importance sampling, q_phi's
   variance inflated 2x, S = 5000 (eq. 48); the smooth k-NN statistic (k = 1, temperature
   0.1). Beyond the paper: the exact test log-likelihood (`statistics.exact_likelihood`),
   the table's main column, and I_q(X;Z) and KL(q(z) || p(z)) under the data
   distribution (`statistics.population`; on the test points I_q is capped at log 500).
4. Per method, report the setting with the best test log-likelihood averaged over the data
   sets (the exact one where all its settings have it, else eq. 48's), as mean +-
   standard deviation over them.

Each setting is a run, `OUTPUT_DIR/<dataset>/<index>/<method>/<setting>/`, of the study
in `experiments.libi_runs`, or, batched, one of the settings x data sets x restarts of a
`Batch` (`make_batches`, `OUTPUT_DIR/<dataset>/members/<method>/...`); `summarize` makes
the table from the settings' records. The ground
truth is a reference row (`synthetic_run.truth_reference`). `PROFILES['paper']` is
Appendix E's grid (30k epochs, 5 data sets per type); `PROFILES['protocol']`, that of the
committed results, lists its reductions.
"""

import dataclasses
import hashlib
import itertools
import json
import math
import os
from typing import Dict, Optional, Tuple

import numpy as np

from brokenelbo import errors
from brokenelbo.utils import files

METHODS = ('vae', 'beta_vae', 'beta_vae_anneal', 'lagging', 'libi')
METHOD_TITLES = {'vae': 'VAE', 'beta_vae': 'beta-VAE', 'beta_vae_anneal': 'beta-VAE + anneal',
                 'lagging': 'Lagging', 'libi': 'LiBI'}
DATASETS = ('linear_jtex', 'cubic_jtex', 'gaussian', 'mobius')
DATASET_TITLES = {'linear_jtex': 'LinearJTEx', 'cubic_jtex': 'CubicJTEx',
                  'gaussian': 'Gaussian', 'mobius': 'Mobius'}

# Appendix E, "Hyper-parameter Search": each method's grid, per data-set type.
_LAGGING_SEGMENTS = {'linear_jtex': (40, 50, 60, 70), 'cubic_jtex': (30, 40, 50, 60),
                     'gaussian': (5, 10, 15, 20), 'mobius': (60, 70, 80, 90)}


def paper_grid(dataset):
  """Appendix E's grid for `dataset`: `{method: [setting dict, ...]}`."""
  epsilon_hz = (1., 10., 20.) if dataset == 'mobius' else (0.001, 1., 10., 20.)
  return {
      'vae': [{}],
      'beta_vae': [{'beta': b} for b in (0.5, 2., 5.)],
      'beta_vae_anneal': [{'beta': b} for b in (0.5, 1., 2., 5.)],
      'lagging': [{'segments': r} for r in _LAGGING_SEGMENTS[dataset]],
      'libi': [{'epsilon_hz': h, 'epsilon_sigma': s, 'epsilon_mu': m, 'repeats': r}
               for h, s, m, r in itertools.product(epsilon_hz, (0.2, 0.5), (0.2, 0.5),
                                                   (1, 6))],
  }


def cpu_grid(dataset):
  """A quarter of the grid, for a quicker look (`PROFILES['cpu']`)."""
  grid = paper_grid(dataset)
  segments = _LAGGING_SEGMENTS[dataset]
  grid['lagging'] = [{'segments': r} for r in (segments[0], segments[-1])]
  grid['libi'] = [s for s in grid['libi'] if s['epsilon_hz'] in (1., 10.)
                  and s['epsilon_sigma'] == s['epsilon_mu'] == 0.5]
  return grid


@dataclasses.dataclass(frozen=True)
class Profile:
  """How much of the protocol to run.

  Attributes:
    grid: `grid(dataset) -> {method: [setting, ...]}`.
    epochs: `{dataset: int}`, full-batch epochs per run (paper: 30k).
    num_datasets: `{dataset: int}`, data sets per type (paper: 5).
    restarts: `{dataset: int}`, random restarts per setting (paper: 10).
    knn_draws: draws of 100 + 100 points for the smooth k-NN statistic (paper: 20,000).
    likelihood_samples: S of the test log-likelihood, eq. 48 (paper: 5000).
    population_queries: fresh draws x ~ p(x) of the population I_q and gap, or None for
      `restarts_suite`'s default.
    members_per_run: the most members (setting x data set x restart) one batched run of a
      method trains (`make_batches`), or None: one run per setting and data set.
    reductions: what differs from the paper, in words.
    bindings: `{method: (gin binding, ...)}`, the profile's choices where the paper is
      silent, bound in every run of the method after its config (`'*'`: every method).
  """
  grid: object
  epochs: Dict[str, int]
  num_datasets: Dict[str, int]
  restarts: Dict[str, int] = dataclasses.field(
      default_factory=lambda: {d: 10 for d in DATASETS})
  knn_draws: int = 20000
  likelihood_samples: int = 5000
  population_queries: Optional[int] = None
  members_per_run: Optional[int] = None
  reductions: Tuple[str, ...] = ()
  bindings: Dict[str, Tuple[str, ...]] = dataclasses.field(default_factory=dict)

  def method_bindings(self, method):
    """The profile's gin bindings of a run of `method`."""
    return (*self.bindings.get('*', ()), *self.bindings.get(method, ()))


# Choices where the paper is silent (docs/methods.md), which the `protocol` and `cpu`
# profiles make so that the baselines and LiBI's step 2 converge in 30k full-batch epochs.
_SILENT_CHOICES = (
    'choices where the paper is silent (docs/methods.md): q starts at the Laplace scale of '
    'the initial model, LiBI\'s step 2 at that of its codes, and the learning rate decays '
    'linearly to 0 over the second half')
_SILENT_CHOICE_BINDINGS = {'*': ("SyntheticVAE.initial_scale = 'laplace'",
                                 'normalized_adam.decay_start_fraction = 0.5'),
                           'libi': ("LiBI.step2_scale = 'laplace'",)}

PROFILES = {
    'paper': Profile(grid=paper_grid, epochs={d: 30000 for d in DATASETS},
                     num_datasets={d: 5 for d in DATASETS}),
    'cpu': Profile(
        grid=cpu_grid,
        epochs={'linear_jtex': 10000, 'cubic_jtex': 10000, 'gaussian': 30000,
                'mobius': 15000},
        num_datasets={'linear_jtex': 2, 'cubic_jtex': 2, 'gaussian': 2, 'mobius': 1},
        restarts={'linear_jtex': 10, 'cubic_jtex': 10, 'gaussian': 10, 'mobius': 5},
        knn_draws=2000,
        reductions=(
            '10k full-batch epochs on LinearJTEx and CubicJTEx, 15k on Mobius, instead of '
            '30k (Gaussian keeps 30k: at 10k its models were still far from converged)',
            '2 data sets per type (Mobius 1) instead of 5',
            'Mobius: 5 restarts per setting instead of 10',
            'lagging: the smallest and largest R of the paper\'s four',
            'LiBI: eps_HZ in {1, 10}, eps_Sigma = eps_mu = 0.5, R in {1, 6}: 4 of the '
            'paper\'s 32 (Mobius 24) settings',
            'smooth k-NN averaged over 2,000 draws instead of 20,000 (its standard error '
            'is reported)',
            _SILENT_CHOICES,
        ),
        members_per_run=160, bindings=_SILENT_CHOICE_BINDINGS),
    # Appendix E's whole grids at 30k epochs, cut in data sets and restarts to fit this
    # 2-core CPU: the paper's protocol costs about 40 hours of its training here
    # (scripts/libi_protocol_cost.py), 92% of it LiBI's step 1; this one 5.5 hours of wall
    # time, two batched runs at a time (docs/measurements.md).
    'protocol': Profile(
        grid=paper_grid, epochs={d: 30000 for d in DATASETS},
        num_datasets={d: 2 for d in DATASETS}, restarts={d: 5 for d in DATASETS},
        knn_draws=2000, members_per_run=160,
        reductions=(
            '2 data sets per type instead of 5',
            '5 restarts per setting instead of 10',
            'smooth k-NN averaged over 2,000 draws instead of 20,000 (its standard error '
            'is reported)',
            _SILENT_CHOICES,
        ),
        bindings=_SILENT_CHOICE_BINDINGS),
    # A few epochs, two restarts: checks the whole pipeline in seconds (tests).
    'smoke': Profile(
        grid=lambda d: {m: s[:1] for m, s in cpu_grid(d).items()},
        epochs={d: 6 for d in DATASETS}, num_datasets={d: 1 for d in DATASETS},
        restarts={d: 2 for d in DATASETS}, knn_draws=20, likelihood_samples=200,
        population_queries=100,
        reductions=('smoke: 6 epochs, 2 restarts, S = 200, 100 population draws',)),
}
# The smoke test of a grid: two settings of each method (the VAE's one) on two data sets of
# each type, so that a batched study (`make_batches`) holds settings x data sets x restarts.
PROFILES['smoke_grid'] = dataclasses.replace(
    PROFILES['smoke'], grid=lambda d: {m: s[:2] for m, s in cpu_grid(d).items()},
    num_datasets={d: 2 for d in DATASETS}, knn_draws=10, likelihood_samples=100,
    population_queries=20,
    reductions=('smoke: 6 epochs, 2 settings per method on 2 data sets, 2 restarts, '
                'S = 100, 20 population draws, 10 k-NN draws',))

# The paper's Table 1: (test LL, spread, smooth k-NN, spread) per data set and method.
PAPER_TABLE = {
    'linear_jtex': {'vae': (-3.15, .04, 1.62, .12), 'beta_vae': (-3.15, .04, 1.62, .12),
                    'beta_vae_anneal': (-3.15, .04, 1.63, .12),
                    'lagging': (-3.15, .04, 1.62, .11), 'libi': (-2.99, .03, .06, .05)},
    'cubic_jtex': {'vae': (-5.85, .63, 4.86, 1.82), 'beta_vae': (-5.47, .14, 2.99, 1.48),
                   'beta_vae_anneal': (-12.91, 11.51, 2.86, 1.01),
                   'lagging': (-30.64, 39.17, 7.07, 1.24), 'libi': (-8.90, 3.98, 1.75, 2.75)},
    'gaussian': {'vae': (6.73, .23, 15.28, 7.98), 'beta_vae': (7.65, .09, 4.10, 1.22),
                 'beta_vae_anneal': (7.54, .14, 5.86, 1.66),
                 'lagging': (6.94, .53, 15.61, 8.26), 'libi': (7.85, .05, .10, .08)},
    'mobius': {'vae': (1.88, .05, .38, .20), 'beta_vae': (1.92, .06, .27, .14),
               'beta_vae_anneal': (1.88, .05, .37, .19), 'lagging': (1.90, .08, .72, .78),
               'libi': (1.91, .05, .17, .06)},
}

def setting_name(setting):
  """`{'beta': 0.5}` -> 'beta=0.5'; the empty setting (the VAE) -> 'default'."""
  if not setting:
    return 'default'
  return ','.join(f'{k}={v:g}' for k, v in sorted(setting.items()))


# Where each key of a setting is bound (`setting_bindings`, `batch_bindings`).
_SETTING_BINDINGS = {'beta': 'beta_schedule.beta', 'segments': 'LaggingInference.segments'}


def _setting_binding(key, value):
  """`<binding> = <value>` of one key of a setting; `value` one number, or a tuple of one
  per member of a batched run."""
  cast = int if key == 'segments' else (lambda v: v)
  value = tuple(cast(v) for v in value) if isinstance(value, tuple) else cast(value)
  return f'{_SETTING_BINDINGS.get(key, "LiBI." + key)} = {value!r}'


def _epochs_bindings(method, epochs):
  bindings = [f'EPOCHS = {epochs}']
  if method == 'beta_vae_anneal':
    # configs/libi/beta_vae_anneal.gin anneals over the first 10% of the epochs.
    bindings.append(f'beta_schedule.anneal_epochs = {max(1, epochs // 10)}')
  return bindings


def setting_bindings(method, setting, epochs):
  """The gin bindings of one setting of `method`, trained for `epochs` epochs."""
  bindings = _epochs_bindings(method, epochs)
  return bindings[:1] + [_setting_binding(k, v) for k, v in sorted(setting.items())] + (
      bindings[1:])


@dataclasses.dataclass(frozen=True)
class Run:
  """One setting of one method on one data set: one run of `restarts` restarts."""
  dataset: str
  index: int
  method: str
  setting: Tuple[Tuple[str, float], ...]

  @property
  def setting_dict(self):
    return dict(self.setting)

  def relative_dir(self):
    return os.path.join(self.dataset, str(self.index), self.method,
                        setting_name(self.setting_dict))

  def gin_files(self):
    return [f'configs/libi/{self.method}.gin']


def make_runs(profile, datasets=DATASETS, methods=METHODS, indices=None):
  """The runs of `profile`, cheapest data-set types first, in a fixed order."""
  runs = []
  for dataset in datasets:
    grid = profile.grid(dataset)
    chosen = range(profile.num_datasets[dataset]) if indices is None else indices
    for index in chosen:
      for method in methods:
        for setting in grid[method]:
          runs.append(Run(dataset, int(index), method, tuple(sorted(setting.items()))))
  return runs


# `training.optimizers.normalized_adam`'s epsilon, which configs/libi leave at its default:
# each of the R restarts of a run alone follows Adam with R times it (docs/methods.md,
# "Members").
ADAM_EPSILON = 1e-8
# What a batched run binds to lay out its members (`batch_bindings`, and its evaluation's
# `restarts_suite.groups`): a binding of the user's would break that layout.
MEMBER_BINDINGS = ('synthetic.index', 'SyntheticVAE.restarts', 'SyntheticVAE.first_restart',
                   'SyntheticVAE.restart_ids', 'SyntheticVAE.member_datasets',
                   'normalized_adam.epsilon', 'restarts_suite.groups')


@dataclasses.dataclass(frozen=True)
class Batch:
  """Runs of one method on one data-set type, trained as one run of members.

  A model of members (`models.synthetic.SyntheticVAE`, docs/methods.md "Members") holds
  the `restarts` restarts of each of `runs` (settings x data sets): member
  m = g * restarts + r is restart r of `runs[g]`, seeded as that restart, on that run's
  data set, with that run's setting (`batch_bindings`); Adam's epsilon is R / M times the
  default, so that each member trains as it would in its run alone. Its evaluation
  (`synthetic_run.restarts_suite` with `groups`) scores each run's restarts as that run's
  own evaluation would.
  """
  dataset: str
  method: str
  runs: Tuple[Run, ...]
  restarts: int

  @property
  def indices(self):
    """The data sets of the runs, in the order they are stacked (`synthetic.index`)."""
    return tuple(sorted({run.index for run in self.runs}))

  @property
  def num_members(self):
    return len(self.runs) * self.restarts

  def members(self, run):
    """The members of `run`: its restarts 0, ..., R - 1, in order."""
    start = self.runs.index(run) * self.restarts
    return list(range(start, start + self.restarts))

  def groups(self):
    """The run of each member, as its position in `runs` (`restarts_suite.groups`)."""
    return tuple(g for g in range(len(self.runs)) for _ in range(self.restarts))

  def relative_dir(self):
    """`<dataset>/members/<method>/<runs>x<restarts>-<digest>`; the digest of the runs and
    restarts names what the batch trains, so that another batching is another run."""
    content = json.dumps([[run.index, run.setting] for run in self.runs] + [self.restarts])
    digest = hashlib.sha256(content.encode()).hexdigest()[:10]
    return os.path.join(self.dataset, 'members', self.method,
                        f'{len(self.runs)}x{self.restarts}-{digest}')

  def gin_files(self):
    return [f'configs/libi/{self.method}.gin']


def batch_bindings(batch, epochs):
  """The gin bindings of `batch` trained for `epochs` epochs.

  Each key of the runs' settings takes one value per member (one value where all
  members share it); the data sets are stacked (`synthetic.index`), each member gets its
  restart as seeding index and its run's data set, and Adam's epsilon is R / M times
  `ADAM_EPSILON`: a member's gradient is 1/M of its own loss's, where its run alone gave
  1/R of it (`SyntheticVAE`, "Members").
  """
  restarts, runs = batch.restarts, batch.runs
  bindings = _epochs_bindings(batch.method, epochs)
  for key in sorted(runs[0].setting_dict):
    values = tuple(run.setting_dict[key] for run in runs for _ in range(restarts))
    bindings.append(_setting_binding(key, values if len(set(values)) > 1 else values[0]))
  member_datasets = tuple(batch.indices.index(run.index) for run in runs
                          for _ in range(restarts))
  return bindings + [
      f'synthetic.name = {batch.dataset!r}', f'synthetic.index = {batch.indices!r}',
      f'SyntheticVAE.restarts = {batch.num_members}',
      f'SyntheticVAE.restart_ids = {tuple(range(restarts)) * len(runs)!r}',
      f'SyntheticVAE.member_datasets = {member_datasets!r}',
      f'normalized_adam.epsilon = {restarts / batch.num_members * ADAM_EPSILON!r}']


def make_batches(profile, members_per_run, datasets=DATASETS, methods=METHODS,
                 indices=None):
  """The runs of `make_runs` as `Batch`es of at most `members_per_run` members.

  Per data-set type and method, its runs (the grid's settings in order, each on every
  data set) are cut into as few batches as hold them, of sizes that differ by one run at
  most, so that batches launched together end together; a run's restarts are never split.
  LiBI's runs are batched apart by their repeats R: a batch computes the step-1 penalty
  for all its members while any is in step 1 (`training.libi`), which members of one R
  are at the same epochs (half of them), and R in {1, 6} together at three quarters.

  Raises:
    UserError: if `members_per_run` is below the restarts of a setting on a data-set type
      of `datasets`.
  """
  check_members_per_run(profile, datasets, members_per_run)
  runs = make_runs(profile, datasets, methods, indices)
  batches = []
  for dataset in datasets:
    restarts = profile.restarts[dataset]
    grid = profile.grid(dataset)
    for method in methods:
      order = [tuple(sorted(setting.items())) for setting in grid[method]]
      mine = [run for run in runs if run.dataset == dataset and run.method == method]
      for _, group in itertools.groupby(sorted(mine, key=lambda run: (
          run.setting_dict.get('repeats', 0), order.index(run.setting), run.index)),
                                        key=lambda run: run.setting_dict.get('repeats')):
        group = list(group)
        count = -(-len(group) // (members_per_run // restarts))
        batches += [Batch(dataset, method, tuple(group[i] for i in chunk), restarts)
                    for chunk in np.array_split(np.arange(len(group)), count)]
  return batches


def check_members_per_run(profile, datasets, members_per_run):
  """Raises `UserError` unless `members_per_run` holds every restart of a setting of each
  data-set type of `datasets` (`None`, unbatched, is fine)."""
  if members_per_run is None:
    return
  dataset = max(datasets, key=lambda d: profile.restarts[d])
  if members_per_run < profile.restarts[dataset]:
    raise errors.UserError(
        f'--members_per_run={members_per_run}: a batched run trains every restart of a '
        f'setting, so it must be at least {profile.restarts[dataset]} (the restarts of a '
        f'setting on {dataset})')


# ----------------------------------------------------------------------------------------
# The table: plain Python on the records, no TensorFlow.

# The numbers of a kept restart that the table averages over data sets (a record that
# lacks one, written before it existed, counts as NaN).
SUMMARY_KEYS = ('exact_log_likelihood', 'log_likelihood', 'knn', 'mutual_information',
                'marginal_kl', 'population_mutual_information', 'population_marginal_kl',
                'generative_mutual_information')


def _entry(name, group):
  """One setting's cell: its kept restarts' numbers, mean and std over the data sets."""
  kept = [r['restarts'][r['selected']] | {'knn': r['knn']['mean']} for r in group
          if r['selected'] is not None]
  if not kept:
    return None
  entry = dict(setting=name, num_datasets=len(kept), indices=sorted(r['index'] for r in group))
  for key in SUMMARY_KEYS:
    values = np.array([math.nan if k.get(key) is None else k[key] for k in kept], np.float64)
    entry[key] = float(np.mean(values))
    entry[f'{key}_std'] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
  return entry


def summarize(records):
  """Table 1 from run records: per (data set, method), the setting with the best mean test
  log-likelihood over the data sets, and its mean and standard deviation over them.

  The test log-likelihood that ranks the settings is the exact one where every setting of
  the method has it (records written since it exists), else eq. 48's estimate (the
  paper's); `selected_by` names it. Only settings evaluated on the most data sets compete.

  Args:
    records: iterable of setting records (`libi_runs.setting_record`).

  Returns:
    `{dataset: {method: dict(setting, num_datasets, indices, <key> and <key>_std for each
    of SUMMARY_KEYS, settings_compared, selected_by)}}`.
  """
  groups = {}
  for record in records:
    key = (record['dataset'], record['method'], setting_name(record['setting']))
    groups.setdefault(key, []).append(record)
  candidates = {}
  for (dataset, method, name), group in sorted(groups.items()):
    entry = _entry(name, group)
    if entry is not None:
      candidates.setdefault((dataset, method), []).append(entry)
  table = {}
  for (dataset, method), entries in candidates.items():
    score = ('exact_log_likelihood' if all(math.isfinite(e['exact_log_likelihood'])
                                           for e in entries) else 'log_likelihood')
    best = None
    for entry in entries:
      if (best is None or entry['num_datasets'] > best['num_datasets']
          or (entry['num_datasets'] == best['num_datasets'] and entry[score] > best[score])):
        best = entry
    table.setdefault(dataset, {})[method] = best | {'settings_compared': len(entries),
                                                    'selected_by': score}
  return table


def _cell(mean, std, digits=2):
  if mean is None or not math.isfinite(mean):
    return '-'
  spread = f' ± {std:.{digits}f}' if std is not None and math.isfinite(std) else ''
  return f'{mean:.{digits}f}{spread}'


def _truth_values(records, key):
  """`records`' values of `key` as float64, a missing or `null` one as NaN."""
  return np.array([math.nan if r.get(key) is None else r[key] for r in records], np.float64)


def truth_likelihoods(record):
  """(exact, eq. 48) test log-likelihoods of a ground truth's record, `None` where it has
  none: a record written before both were kept holds the one its log_likelihood_kind
  names."""
  exact_kind = record['log_likelihood_kind'].startswith('exact')
  exact = record.get('exact_log_likelihood',
                     record['log_likelihood'] if exact_kind else None)
  estimate = record.get('importance_log_likelihood',
                        None if exact_kind else record['log_likelihood'])
  return exact, estimate


TABLE_HEADER = (
    '| data set | method | test LL, exact | test LL, eq. 48 | test LL (paper) | S-kNN (ours) '
    '| S-kNN (paper) | I_theta(X;Z) | I_q(X;Z) | KL(q(z)‖p(z)) | I_q, 500 test points '
    '| setting kept | data sets |')


def _method_line(dataset, method, ours):
  paper = PAPER_TABLE[dataset][method]

  def cell(key, digits=2):
    return _cell(ours.get(key), ours.get(f'{key}_std'), digits)

  return (f'| {DATASET_TITLES[dataset]} | {METHOD_TITLES[method]} | '
          f'{cell("exact_log_likelihood")} | {cell("log_likelihood")} | '
          f'{_cell(paper[0], paper[1])} | {cell("knn")} | {_cell(paper[2], paper[3])} | '
          f'{cell("generative_mutual_information")} | '
          f'{cell("population_mutual_information")} | '
          f'{cell("population_marginal_kl", 3)} | {cell("mutual_information")} | '
          f'{ours["setting"]} (of {ours["settings_compared"]}) | {ours["num_datasets"]} |')


def _truth_line(dataset, truth):
  exact, estimate = (np.array([math.nan if v is None else v for v in values], np.float64)
                     for values in zip(*map(truth_likelihoods, truth)))
  knn = _truth_values([t['knn'] for t in truth], 'mean')
  std = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else math.nan)

  def cell(values, digits=2):
    return _cell(values.mean(), std(values), digits)

  gmi, pmi, gap, mi = (_truth_values(truth, key) for key in (
      'generative_mutual_information', 'population_mutual_information',
      'population_marginal_kl', 'mutual_information'))
  return (f'| {DATASET_TITLES[dataset]} | ground truth | {cell(exact)} | {cell(estimate)} | '
          f'- | {cell(knn)} | - | {cell(gmi)} | {cell(pmi)} | {cell(gap, 3)} | {cell(mi)} | '
          f'{truth[0]["log_likelihood_kind"]} | {len(truth)} |')


def format_table(table, truths=None):
  """Markdown: for each data set, ours beside the paper's Table 1, per method.

  Test LL, exact: by quadrature or closed form (`statistics.exact_likelihood`); eq. 48:
  the paper's importance-sampling estimate. I_q(X;Z) and KL(q(z)‖p(z)): under the data
  distribution (`statistics.population`); I_q on the 500 test points is capped at
  log 500 = 6.21. '-': not in the records (written before it was computed).
  """
  lines = [TABLE_HEADER, '|' + '---|' * (TABLE_HEADER.count('|') - 1)]
  for dataset in DATASETS:
    if dataset not in table:
      continue
    for method in METHODS:
      if table[dataset].get(method) is not None:
        lines.append(_method_line(dataset, method, table[dataset][method]))
    truth = [t for t in (truths or []) if t['dataset'] == dataset]
    if truth:
      lines.append(_truth_line(dataset, truth))
  return '\n'.join(lines)


# What the table reads of each file (`files.check_schema`): a number may be `null` (not
# finite, as `files.to_json` writes it).
_NUMBER = files.NUMBER_OR_NULL
# The ground truth's record of one data set (`libi_runs.write_truth`).
TRUTH_SCHEMA = {'dataset': str, 'index': int, 'log_likelihood': _NUMBER,
                'log_likelihood_kind': str, 'knn': {'mean': _NUMBER},
                'mutual_information': _NUMBER, 'marginal_kl': _NUMBER}
# The record of one evaluated setting (`libi_runs.setting_record`).
RECORD_SCHEMA = {'dataset': str, 'index': int, 'method': str, 'setting': {str: files.NUMBER},
                 'restarts': [{}], 'selected': (int, type(None)), 'knn': {'mean': _NUMBER},
                 'run_dir': str}
# One cell of the table (`summarize`).
_ENTRY_SCHEMA = {'setting': str, 'num_datasets': int, 'settings_compared': int,
                 **{f'{key}{end}': _NUMBER for key in ('log_likelihood', 'knn',
                                                       'mutual_information', 'marginal_kl')
                    for end in ('', '_std')}}
RESULTS_SCHEMA = {'table': {str: {str: _ENTRY_SCHEMA}}, 'ground_truth': [TRUTH_SCHEMA],
                  'runs': [RECORD_SCHEMA]}


def load_results(path, what='--results'):
  """The results JSON that `python -m brokenelbo.libi` writes.

  Raises:
    UserError: naming `what` and `path`, if the file cannot be read, is not valid JSON
      (the line and column), or lacks what the table reads (the key).
  """
  return files.read_json(path, what, RESULTS_SCHEMA)


def load_truth(path):
  """The ground truth's record of one data set (`TRUTH_SCHEMA`).

  Raises:
    UserError: as `load_results`.
  """
  return files.read_json(path, 'ground-truth record', TRUTH_SCHEMA)
