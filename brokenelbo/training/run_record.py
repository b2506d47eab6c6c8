"""A run's record: the files that say a run finished and what it measured.

`train` writes `model_dir/run.json` when a run finishes: its final step and epoch, the
SHA-256 of its `config.gin`, its hyper-parameters (those of its HParams session,
`summaries.run_hparams`: family, dataset, its binarization, beta, annealing, seed, epochs,
batch) and its final evaluation, `{split: {rate, distortion, elbo, beta, num_examples}}` in
nats per example. `evaluate` writes `model_dir/evaluation.json`,
`{split: record}` (the whole-split R, D and ELBO and the information suite), one record
per split evaluated, a new evaluation of a split replacing its record. `rd_curve` writes
`model_dir/rd_curve.json`, `{split: record}` (the AIS rate-distortion curve of the run's
decoder and marginal, `evaluation.rd_curve`), a split's record replaced only when asked.
All are strict JSON written atomically and read by `files.read_json`: a record that is cut
short, garbled or of the wrong shape is a `UserError` naming it.

`is_finished(model_dir)` is the one answer to whether a run is finished: every tool (the
sweep, the LiBI table, `plot`, the results scripts) asks it, and reads the numbers from
these files only. An attempt that starts again removes `run.json` first, and a failed
attempt leaves `failed.json` (`run_dir.failure_record`).
"""

import hashlib
import os

from brokenelbo import errors
from brokenelbo.utils import files

RUN_RECORD = 'run.json'
EVALUATION_RECORD = 'evaluation.json'
RD_CURVE_RECORD = 'rd_curve.json'


def config_digest(config_text):
  """The SHA-256 of a run's `config.gin` text, as hex."""
  return hashlib.sha256(config_text.encode()).hexdigest()


# What the tools read of the records (`files.check_schema`): every other key is free.
RUN_SCHEMA = {'step': files.NUMBER, 'hparams': {},
              'metrics': {str: {str: files.NUMBER_OR_NULL}}}
EVALUATION_SCHEMA = {str: {'step': files.NUMBER}}
RD_CURVE_SCHEMA = {str: {'step': files.NUMBER, 'split': str}}


def write_run_record(model_dir, step, epoch, metrics, config_text, hparams=None):
  """Writes `model_dir/run.json`: the run finished at `step` (`epoch`) with `metrics`
  (`{split: {name: number}}`), under the config whose text is `config_text`, with the
  hyper-parameters `hparams` (`{name: str or number}`)."""
  record = dict(step=int(step), epoch=float(epoch), config_sha256=config_digest(config_text),
                hparams=hparams or {}, metrics=metrics)
  files.write_atomic(os.path.join(model_dir, RUN_RECORD),
                     files.to_json(record, indent=2, sort_keys=True) + '\n')
  return record


def remove_run_record(model_dir):
  """Removes `model_dir/run.json`, if any: an attempt that trains again is not finished."""
  try:
    os.remove(os.path.join(model_dir, RUN_RECORD))
  except FileNotFoundError:
    pass


def read_run_record(model_dir):
  """The record of a finished run, `dict`, or `None` if the run has not finished.

  Raises:
    UserError: if `run.json` cannot be read, is not valid JSON (cut short, garbled) or
      lacks what the tools read (`RUN_SCHEMA`), naming it and the place.
  """
  return files.read_json(os.path.join(model_dir, RUN_RECORD), 'run record', RUN_SCHEMA,
                         missing_ok=True)


def is_finished(model_dir):
  """Whether the run in `model_dir` finished (its `run.json` exists), with finite final
  metrics; a run whose record holds a non-finite value (`null`) is not finished."""
  record = read_run_record(model_dir)
  if record is None:
    return False
  values = [v for split in record['metrics'].values() for v in split.values()]
  return all(isinstance(v, (int, float)) for v in values)


def final_evaluation(model_dir, split):
  """`evaluate`'s record of `split` if the run is finished and the record was made at the
  step it finished (`run.json`); `None` otherwise (no record, or one of an earlier step)."""
  return _at_final_step(model_dir, read_evaluations(model_dir).get(split))


def _at_final_step(model_dir, split_record):
  """`split_record` if the run is finished and it was made at the step the run finished;
  `None` otherwise."""
  record = read_run_record(model_dir)
  if record is None or split_record is None or split_record.get('step') != record['step']:
    return None
  return split_record


def read_evaluations(model_dir):
  """`{split: record}` of `evaluate`'s records in `model_dir` (empty if none).

  Raises:
    UserError: as `read_run_record`, for `evaluation.json` (`EVALUATION_SCHEMA`).
  """
  return files.read_json(os.path.join(model_dir, EVALUATION_RECORD), 'evaluation record',
                         EVALUATION_SCHEMA, missing_ok=True) or {}


def write_evaluation(model_dir, split, record):
  """Records `evaluate`'s `record` of `split` in `model_dir/evaluation.json`, replacing
  that split's earlier record. The caller holds the run's lock (`run_dir.RunLock`)."""
  _write_split(model_dir, EVALUATION_RECORD, read_evaluations(model_dir), split, record)


def _write_split(model_dir, name, records, split, record):
  """Writes `records` (`{split: record}`, read from `model_dir/name`) with `split`'s
  replaced by `record`, atomically."""
  records[split] = record
  files.write_atomic(os.path.join(model_dir, name), files.to_json(records, indent=2) + '\n')


def read_rd_curves(model_dir):
  """`{split: record}` of `rd_curve`'s records in `model_dir` (empty if none).

  Raises:
    UserError: as `read_run_record`, for `rd_curve.json` (`RD_CURVE_SCHEMA`).
  """
  return files.read_json(os.path.join(model_dir, RD_CURVE_RECORD), 'rate-distortion curve '
                         'record', RD_CURVE_SCHEMA, missing_ok=True) or {}


def write_rd_curve(model_dir, split, record):
  """Records `rd_curve`'s `record` of `split` in `model_dir/rd_curve.json`, beside the
  other splits' records. The caller holds the run's lock (`run_dir.RunLock`) and has
  decided that an earlier record of `split` may be replaced."""
  _write_split(model_dir, RD_CURVE_RECORD, read_rd_curves(model_dir), split, record)


def check_rd_curve_absent(model_dir, split, overwrite):
  """Raises `UserError` if `model_dir/rd_curve.json` holds a record of `split`, unless
  `overwrite`: a curve takes hours, and is not replaced unasked."""
  curve = read_rd_curves(model_dir).get(split)
  if curve is not None and not overwrite:
    raise errors.UserError(f'{os.path.join(model_dir, RD_CURVE_RECORD)} holds the {split} '
                           f"split's curve (step {curve['step']}); pass --overwrite to "
                           'replace it')


def final_rd_curve(model_dir, split):
  """`rd_curve`'s record of `split` if the run is finished and the record was made at the
  step it finished (`run.json`); `None` otherwise (no record, or one of an earlier step)."""
  return _at_final_step(model_dir, read_rd_curves(model_dir).get(split))
