"""The training time of the LiBI paper's whole protocol (Appendix E) as batched runs.

For each method on a data-set type, times one compiled training step of a batched run of M
members (`experiments.libi_table.Batch`, bound as `python -m brokenelbo.libi
--members_per_run` binds it: `batch_bindings`) at several M, prints ms per step, ms per
member-step and the ratio of each to the smallest M's, then extrapolates the protocol's
training time from them and prints how.

  python scripts/libi_protocol_cost.py [--datasets=linear_jtex] [--members=10,40,160,640]
      [--methods=vae,beta_vae,beta_vae_anneal,lagging,libi] [--steps=10] [--repeats=5]
      [--profile=paper]

How a step is timed: the study's training step (`training.step.Trainer`, full batch, the
config of `configs/libi/<method>.gin` with the batch's bindings), `--steps` steps per call,
the median of `--repeats` calls after one untimed call (which compiles). A batch of M
members holds M / R of the protocol's runs of the method on the data-set type, in the
study's order (repeated where it has fewer; fewer than R members: one run of M restarts).
LiBI is timed at a step where every member is in step 1 (its Henze-Zirkler penalty, which
a batch computes for all members while any is in step 1) and at one where none is.

How the protocol is extrapolated:
- A step's time t(M) is linear in M between the measured counts, and beyond the largest
  at the slope of its last two; below the smallest, t of the smallest.
- Per data-set type and method: the profile's settings x data sets x R restarts (paper:
  Appendix E's grid x 5 x 10), cut by
  `libi_table.make_batches` into runs of at most N members (N each measured count), or
  unbatched, one run per setting's R restarts; each run 30,000 full-batch steps,
  LiBI's a fraction f of them with the penalty (f from its members' repeats: 1/2 for one
  R, 3/4 for R in {1, 6} together) and the rest without.
- The runs one after another in one process: training only (no evaluation, process
  start or compilation). A data-set type not measured is taken to cost what the first
  measured one does (said where it is).
"""

import argparse

import gin
import numpy as np
import tensorflow as tf

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo.data import pipeline
from brokenelbo.experiments import bench
from brokenelbo.experiments import libi_table
from brokenelbo.training import libi
from brokenelbo.training import restore
from brokenelbo.training import step as step_lib

PROFILE = libi_table.PROFILES['paper']  # --profile.
EPOCHS = 30000  # Appendix E; full batches, one step per epoch.


def batch_of(dataset, method, members):
  """A `Batch` of `members` members of `method` on `dataset`: the paper protocol's runs in
  the study's order, repeated where there are fewer than members / 10."""
  restarts = min(PROFILE.restarts[dataset], members)
  runs = libi_table.make_batches(PROFILE, 10**9, [dataset], [method])[0].runs
  return libi_table.Batch(dataset, method, tuple(runs[i % len(runs)]
                                                 for i in range(members // restarts)),
                          restarts)


def step1_fraction(batch, epochs=EPOCHS):
  """The fraction of the epochs in which some member of a LiBI `batch` is in step 1."""
  repeats = sorted({run.setting_dict['repeats'] for run in batch.runs})
  schedule = libi.Schedule(epochs, tuple(repeats), 0.5)
  in_step1 = schedule.in_step1(tf.range(epochs, dtype=tf.float64)[:, tf.newaxis])
  return float(np.mean(np.any(in_step1.numpy(), axis=1)))


def _phase_steps(batch, loss):
  """The steps at which LiBI's `batch` is timed: every member in step 1, and none."""
  if batch.method != 'libi':
    return [0]
  in_step1 = loss.schedule.in_step1(tf.range(EPOCHS, dtype=tf.float64)[:, tf.newaxis])
  none = int(np.flatnonzero(~np.any(np.reshape(in_step1.numpy(), [EPOCHS, -1]), axis=1))[0])
  return [0, none]


def step_milliseconds(dataset, method, members, steps, repeats):
  """ms of one training step of a batch of `members` members: `[t]`, or LiBI's `[t in step
  1, t in step 2]`."""
  batch = batch_of(dataset, method, members)
  gin.clear_config()
  settings = restore.run_settings(batch.gin_files(), libi_table.batch_bindings(batch, EPOCHS))
  x = settings['dataset']('train')
  trainer = step_lib.Trainer(
      settings['model'], settings['loss'], tf.distribute.get_strategy(), EPOCHS,
      steps_per_epoch=1, seed=settings['seed'], optimizer=settings['optimizer'],
      jit_compile=settings['jit_compile'], example_shape=x.shape[1:],
      normalize=settings['normalize_gradients'])
  iterator = trainer.distribute(pipeline.train_dataset(x, settings['batch_size'], seed=0))
  num_steps = tf.constant(steps)
  times = []
  for at in _phase_steps(batch, settings['loss']):

    def call(at=at):
      trainer.step.assign(at)
      trainer.train_steps(iterator, num_steps)[0].numpy()

    times.append(1e3 * bench.median_seconds(call, repeats, warmup=1) / steps)
  gin.clear_config()
  return times


def interpolate(counts, values, members):
  """t(members) from t at `counts` (ascending): linear between them, at the last two's
  slope beyond the largest, t of the smallest below it (one count: t / M constant)."""
  if len(counts) == 1:
    return values[0] * max(members, counts[0]) / counts[0]
  if members >= counts[-1]:
    slope = (values[-1] - values[-2]) / (counts[-1] - counts[-2])
    return values[-1] + slope * (members - counts[-1])
  return float(np.interp(members, counts, values))


def protocol_hours(dataset, method, counts, times, members_per_run):
  """Hours of training `method`'s protocol on `dataset` in runs of at most
  `members_per_run` members (`None`: unbatched), from `times[i]` (ms per step, per phase)
  at `counts[i]` members."""
  if members_per_run is None:
    runs = libi_table.make_runs(PROFILE, [dataset], [method])
    batches = [libi_table.Batch(dataset, method, (run,), PROFILE.restarts[dataset])
               for run in runs]
  else:
    batches = libi_table.make_batches(PROFILE, members_per_run, [dataset], [method])
  total = 0.
  for batch in batches:
    per_phase = [interpolate(counts, [t[p] for t in times], batch.num_members)
                 for p in range(len(times[0]))]
    if method == 'libi':
      f = step1_fraction(batch)
      per_step = f * per_phase[0] + (1. - f) * per_phase[1]
    else:
      per_step = per_phase[0]
    total += EPOCHS * per_step / 1e3
  return total / 3600., len(batches)


def _print_steps(dataset, method, counts, times):
  base = np.asarray(times[0])
  for count, t in zip(counts, times):
    phases = ' / '.join(f'{v:8.2f}' for v in t)
    ratio = ' / '.join(f'{v:5.2f}' for v in np.asarray(t) / base)
    member = ' / '.join(f'{v:7.3f}' for v in np.asarray(t) / count)
    member_ratio = ' / '.join(f'{v:5.3f}' for v in np.asarray(t) / count / (base / counts[0]))
    print(f'{dataset:11s} {method:15s} M={count:5d}: {phases} ms/step (x{ratio} of '
          f'M={counts[0]}), {member} ms/member-step (x{member_ratio})', flush=True)


def _print_protocol(measured, datasets, methods, counts):
  print(f'\nThe protocol ({EPOCHS} full-batch epochs; restarts per setting, data sets per '
        f'type: {PROFILE.restarts}, {PROFILE.num_datasets}), training hours of one process '
        'running its runs one after another:')
  totals = {}
  for dataset in libi_table.DATASETS:
    source = dataset if dataset in datasets else datasets[0]
    note = '' if source == dataset else f' (assumed to cost as {source})'
    for members_per_run in [None, *counts]:
      hours = {m: protocol_hours(dataset, m, counts, measured[source, m], members_per_run)
               for m in methods}
      label = 'unbatched' if members_per_run is None else f'M <= {members_per_run}'
      cells = ', '.join(f'{m} {h:.2f} h ({n} runs)' for m, (h, n) in hours.items())
      total = sum(h for h, _ in hours.values())
      totals[label] = totals.get(label, 0.) + total
      print(f'{dataset:11s} {label:10s}: {total:8.2f} h = {cells}{note}')
  for label, total in totals.items():
    print(f'all types   {label:10s}: {total:8.2f} h ({total / totals["unbatched"]:.3f} of '
          'unbatched)')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--datasets', default='linear_jtex')
  parser.add_argument('--members', default='10,40,160,640',
                      help='member counts M, each a multiple of 10 or below it')
  parser.add_argument('--methods', default=','.join(libi_table.METHODS))
  parser.add_argument('--steps', type=int, default=10)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--profile', default='paper', choices=sorted(libi_table.PROFILES),
                      help='the protocol to extrapolate to (its epochs must be 30,000)')
  args = parser.parse_args()
  global PROFILE
  PROFILE = libi_table.PROFILES[args.profile]
  if set(PROFILE.epochs.values()) != {EPOCHS}:
    parser.error(f'--profile={args.profile}: its epochs are not all {EPOCHS}')
  datasets, methods = args.datasets.split(','), args.methods.split(',')
  counts = sorted(int(m) for m in args.members.split(','))
  if any(m < 1 or (m > 10 and m % 10) for m in counts):
    parser.error(f'--members: each a multiple of 10 or in [1, 10], got {args.members}')
  device = tf.config.list_logical_devices()[-1].device_type
  print(f'One training step of a batched run on {device}, ms (LiBI: in step 1 / in step '
        f'2), median of {args.repeats} calls of {args.steps} steps:')
  measured = {}
  for dataset in datasets:
    for method in methods:
      times = [step_milliseconds(dataset, method, m, args.steps, args.repeats) for m in counts]
      measured[dataset, method] = times
      _print_steps(dataset, method, counts, times)
  _print_protocol(measured, datasets, methods, counts)
  print('\n' + __doc__[__doc__.index('How the protocol'):].strip())


if __name__ == '__main__':
  main()
