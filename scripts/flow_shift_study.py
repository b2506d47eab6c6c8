"""The `+-v` family's flow shift: a controlled experiment on the optimiser.

In `+-v` the encoder's shift-only IAF f takes no input from x, and the VampPrior mixes the
encoder's own Gaussians before the same flow (`marginals.VampPrior`), so f cancels out of
the rate: R = E[log e(z|x) - log m(z)] is the same for every f, and f only transforms the
decoder's input, z = f(eps) with eps the encoder's Gaussian draw. Nothing holds f's shift
to the latent scale; this script measures how far it goes under each optimiser setting.

Each variant is one `brokenelbo.train` run of `+-v` at the sweep's CPU profile (one epoch,
the same seed and data order), differing only in its optimiser bindings. For each finished
run it prints the test rate and distortion of the run's final evaluation, the shift
rms |f(eps) - eps| over the encoder's mean scale on 500 test images evenly spaced
through the split (`data.subsets`), and the information suite's I_e, marginal gap and
active units on the same images. Rerunning skips runs that
have finished; `--output` writes the numbers as JSON.

    python scripts/flow_shift_study.py --output_dir=runs/flow_shift \
        --output=results/flow_shift.json
"""

import json
import os
import subprocess
import sys

from absl import flags
import gin
import tensorflow as tf

from brokenelbo import configurables  # pylint: disable=unused-import
from brokenelbo import errors
from brokenelbo.data import subsets
from brokenelbo.evaluation import suite
from brokenelbo.experiments import sweep
from brokenelbo.training import restore
from brokenelbo.utils import cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The sweep's CPU profile (docs/broken_elbo.md, "Figures 3 and 4").
COMMON = ['--gin_file=configs/+-v.gin', '--gin_file=configs/cpu.gin',
          '--gin_bindings=train.epochs = 1', '--gin_bindings=train.checkpoint_every_steps = 200']
# name: (bindings, what the variant tests).
VARIANTS = {
    'normalized_adam_1e-3': ([], 'the sweep: per-variable normalised gradients, Adam at 1e-3'),
    'adam_1e-3': (['train.normalize_gradients = False'],
                  'plain Adam at 1e-3: no per-variable normalisation'),
    'normalized_adam_3e-4': (['normalized_adam.learning_rate = 3e-4'],
                             "normalised gradients at the paper's learning rate"),
    'adam_3e-4': (['train.normalize_gradients = False',
                   'normalized_adam.learning_rate = 3e-4'],
                  "plain Adam at the paper's learning rate"),
    'narrow_made': (['iaf/ShiftOnlyFlow.hidden_units = (64, 64, 64)'],
                    "the sweep's optimiser, the flow's MADEs 3 x 64 wide instead of 3 x 640"),
}
EXAMPLES = 500


def _define_flags():
  flags.DEFINE_string('output_dir', None, 'Where the runs live.', required=True)
  flags.DEFINE_float('beta', 1., 'The beta of D + beta R for every variant.')
  flags.DEFINE_list('variants', list(VARIANTS), 'Variants to run, in this order.')
  flags.DEFINE_string('output', None, 'A JSON file for the numbers (not overwritten).')


def _train(model_dir, bindings, beta):
  command = [sys.executable, '-m', 'brokenelbo.train', *COMMON, f'--model_dir={model_dir}',
             f'--gin_bindings=beta_schedule.beta = {beta}',
             *[f'--gin_bindings={b}' for b in bindings]]
  with open(f'{model_dir}.log', 'a') as log:
    status = subprocess.run(command, cwd=REPO, stdout=log, stderr=log).returncode
  if status:
    raise errors.RunFailed(f'{model_dir} failed (exit status {status}): see {model_dir}.log')


def measure(model_dir):
  """The run's final test metrics, its flow shift and its information suite."""
  gin.clear_config()  # Each run's own config.
  run = restore.restore_run(model_dir)
  images = subsets.spread(run.settings['dataset']('test'), EXAMPLES)
  encoder = run.model.encoder
  gaussian = encoder.gaussian(tf.constant(images, tf.float32))
  eps = gaussian.sample(seed=tf.constant([7, 0], tf.int32))
  shift = encoder.flow.bijector.forward(eps) - eps
  scale = float(tf.reduce_mean(gaussian.stddev()))
  rms_shift = float(tf.sqrt(tf.reduce_mean(tf.square(shift))))
  rms_eps = float(tf.sqrt(tf.reduce_mean(tf.square(eps))))
  info = suite.information_suite(run.model, images, seed=run.settings['seed'],
                                 num_samples=(1,), likelihood_examples=100,
                                 generative_examples=10)
  test = sweep.final_metrics(model_dir, epochs=1)['test']
  return dict(step=run.step, rate=test['rate'], distortion=test['distortion'],
              rms_shift=rms_shift, rms_eps=rms_eps, encoder_scale=scale, shift_over_scale=rms_shift / scale,
              mutual_information=info['mutual_information'],
              rate_information=info['rate_information'], marginal_kl=info['marginal_kl'],
              active_units=info['active_units'])


def main(argv):
  del argv
  args = flags.FLAGS
  unknown = sorted(set(args.variants) - set(VARIANTS))
  if unknown:
    raise errors.UserError(f'unknown variants {unknown}; choose from {sorted(VARIANTS)}')
  if args.output and os.path.exists(args.output):
    raise errors.UserError(f'{args.output} exists; remove it or choose another --output')
  os.makedirs(args.output_dir, exist_ok=True)
  results = {}
  for name in args.variants:
    bindings, description = VARIANTS[name]
    model_dir = os.path.join(args.output_dir, f'beta={args.beta:g}', name)
    if sweep.final_metrics(model_dir, epochs=1) is None:  # Else trained to its end.
      os.makedirs(os.path.dirname(model_dir), exist_ok=True)
      _train(model_dir, bindings, args.beta)
    results[name] = dict(description=description, bindings=bindings, beta=args.beta,
                         **measure(model_dir))
    r = results[name]
    print(f'{name:22s} R {r["rate"]:7.3f}  D {r["distortion"]:8.3f}  '
          f'shift/scale {r["shift_over_scale"]:8.2f} (rms shift {r["rms_shift"]:.3f}, '
          f'rms eps {r["rms_eps"]:.3f}, '
          f'scale {r["encoder_scale"]:.3f})  R_500 {r["rate_information"]:.3f}  '
          f'I_e {r["mutual_information"]:.3f}  '
          f'gap {r["marginal_kl"]:.3f}  active {r["active_units"]}', flush=True)
  if args.output:
    with open(args.output, 'w') as f:
      json.dump(results, f, indent=1)


if __name__ == '__main__':
  _define_flags()
  cli.start(main)
