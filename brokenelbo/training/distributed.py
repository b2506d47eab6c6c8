"""The distributed protocol: how the processes of one run build their strategy, share the
data, agree to stop, resume from one checkpoint, and fail together.

One run can span the processes of several hosts (`tf.distribute.MultiWorkerMirroredStrategy`):
every worker runs the same program in step, each on its share of every global batch. The
chief alone writes `model_dir` (`run_dir.worker_dir`); the chief's replicas come first.

- `make_strategy`: the strategy, built before any other TensorFlow op of the process.
- `distribute_dataset`: each global batch split into one share per replica.
- `stop_agreed`: sum over replicas of each process's own stop request (SIGTERM may reach the
  workers at different steps): > 0 everywhere or nowhere, so all leave after one step.
- `chief_value`: the chief's value of a variable, in every process (a sum over replicas
  of the value on replica 0 and 0 elsewhere).
- `Agreement`: those two as the Python questions the loop asks (`should_stop`,
  `chief_step`); `restore`: the chief chooses the checkpoint, every worker restores it.
- `lost_worker_fails`: a worker that stopped aborts the others' collectives; a `RunFailed`.

Every collective operation here must be called by all workers at the same point.

#### References

[1] TensorFlow, "Custom training loop with Keras and MultiWorkerMirroredStrategy",
    https://www.tensorflow.org/tutorials/distribute/multi_worker_with_ctl
"""

import contextlib
import re

import tensorflow as tf

from brokenelbo import errors
from brokenelbo.training import checkpoints
from brokenelbo.training import run_dir


def make_strategy(strategy):
  """`strategy()`, or TensorFlow's default strategy if `strategy` is `None`.

  `train.strategy` is `@tf.distribute.MirroredStrategy` (the devices of one host) or
  `@tf.distribute.MultiWorkerMirroredStrategy` (one run over several processes or hosts;
  `batch_size` is split over all their replicas; the chief alone writes `model_dir`, which
  every worker must see on a shared file system). For two hosts, run the same command on
  both, with `TF_CONFIG='{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task":
  {"type": "worker", "index": I}}'` (I = 0 on host1, the chief; 1 on host2); or, under
  Slurm, with `MultiWorkerMirroredStrategy.cluster_resolver = @SlurmClusterResolver()`
  bound, start it with `srun --nodes=2 --ntasks-per-node=1`.

  Called before any other TensorFlow op of the process: `MultiWorkerMirroredStrategy`
  configures the runtime's collective operations and starts this worker's server, which
  TensorFlow allows only before its runtime starts, and `SlurmClusterResolver` chooses the
  GPUs that the task sees.

  Raises:
    UserError: if the strategy cannot be created (a malformed `TF_CONFIG`, a
      `SlurmClusterResolver` outside a Slurm job step or without `nvidia-smi` to count
      GPUs, TensorFlow already running in this process).
  """
  if strategy is None:
    return tf.distribute.get_strategy()
  try:
    return strategy()
  except (ValueError, RuntimeError, KeyError, OSError) as e:
    message = (str(e).splitlines() or [type(e).__name__])[0]  # Gin appends lines.
    raise errors.UserError(f'train.strategy cannot be created: {message}') from None


def distribute_dataset(strategy, dataset):
  """An iterator over `dataset`'s global batches split across the replicas.

  Under a multi-worker strategy every worker reads the whole stream and keeps its own
  replicas' shares (`tf.data.experimental.AutoShardPolicy.DATA`: the examples are in memory,
  not in files to divide), so that the workers together see each global batch exactly once.
  """
  options = tf.data.Options()
  options.experimental_distribute.auto_shard_policy = (
      tf.data.experimental.AutoShardPolicy.DATA)
  return iter(strategy.experimental_distribute_dataset(dataset.with_options(options)))


def stop_agreed(strategy, stop_requested):
  """`bool` `Tensor`: `stop_requested` (a boolean `tf.Variable` of each process) is set in
  some process of `strategy`. A collective operation, usable inside a compiled loop."""
  requested = strategy.run(lambda: tf.cast(stop_requested, tf.int32))
  return strategy.reduce(tf.distribute.ReduceOp.SUM, requested, axis=None) > 0


def chief_value(strategy, variable):
  """The value of the `int64` scalar `variable` on the first replica, which is the chief's,
  in every process (a collective operation)."""
  def own_share():
    first = tf.equal(tf.distribute.get_replica_context().replica_id_in_sync_group, 0)
    return tf.where(first, variable.value(), tf.zeros([], variable.dtype))
  return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(own_share), axis=None)


class Agreement:
  """The questions the workers of a run answer together, as Python values.

  Args:
    strategy: the run's `tf.distribute.Strategy`.
    stop_requested: boolean `tf.Variable`, this process's stop request (`preemption`).
    step: `int64` `tf.Variable`, this process's step counter.
  """

  def __init__(self, strategy, stop_requested, step):
    self._stop = tf.function(lambda: stop_agreed(strategy, stop_requested), autograph=False)
    self._chief_step = tf.function(lambda: chief_value(strategy, step), autograph=False)

  def should_stop(self):
    """Python `bool`: a stop was requested (SIGTERM) in some process."""
    return bool(self._stop())

  def chief_step(self):
    """Python `int`, the chief's step counter."""
    return int(self._chief_step())


def restore(objects, model_dir, strategy, agreement):
  """Resumes every process from the newest checkpoint of `model_dir` that the chief reads
  back (`checkpoints.restore_newest`); a worker that is not the chief then restores the
  same step from `model_dir`, read only. Returns the restored path, or `None`."""
  chief = run_dir.is_chief(strategy)
  restored = checkpoints.restore_newest(objects, model_dir) if chief else None
  step = agreement.chief_step()
  if not chief and step:
    restored = checkpoints.restore_step(objects, model_dir, step)
  return restored


@contextlib.contextmanager
def lost_worker_fails(model_dir):
  """Within the block, a worker of the cluster that stopped is a `RunFailed`.

  Under `MultiWorkerMirroredStrategy`, TensorFlow's coordination service notices a worker
  that stopped (killed, or its host lost) by its missing heartbeats, and aborts the
  collective operations of the others (`tf.errors.UnavailableError`). The run cannot go on
  without it: every worker must be started again, and resumes from the last checkpoint.
  """
  try:
    yield
  except tf.errors.UnavailableError as e:
    tasks = re.findall(r'^/job:(\w+)/replica:\d+/task:(\d+)$', e.message, re.MULTILINE)
    who = ', '.join(f'{job} {task}' for job, task in tasks) or 'a worker'
    raise errors.RunFailed(f'{who} of the cluster stopped, which aborts the run; start every '
                           'worker again with the same command to continue from the last '
                           f'checkpoint in {model_dir}') from None
