"""Tests for `scripts/bench_table.py`: its target checks read the right numbers."""

import json

import pytest


def _family(train, utilization, **extra):
  return dict(batch_size=64, train_images_per_second=train,
              train_flop_utilization=utilization, eval_images_per_second=500.,
              sample_seconds=2., **extra)


def _write(tmp_path, families, pipeline):
  path = tmp_path / 'bench.json'
  path.write_text(json.dumps(dict(
      families=families, matmul_peak_flops=1e11, pipeline_images_per_second=pipeline,
      gin_files=[], settings=dict(num_samples=10))))
  return str(path)


def test_checks_each_target(tmp_path, capsys, load_script):
  path = _write(tmp_path, {
      '---': _family(300., .61),
      '-+-': _family(100., .55, naive_sample_seconds=30., sampling_speedup=15.,
                     samples_identical=True),
      '-+v': _family(90., .49, naive_sample_seconds=18., sampling_speedup=9.,
                     samples_identical=False),
  }, pipeline=2400.)
  load_script('bench_table').main(path)
  out = capsys.readouterr().out
  assert '| `-+v` | 90.0 | 49% |  | 500 | 2.00 | 18.0 |' in out
  assert '10 samples (s)' in out
  assert 'met: `---` FLOP utilization 61%' in out
  # The worst PixelCNN family decides: 49% < 50%, 9x < 10x, one family not identical.
  assert 'NOT met: lowest PixelCNN-family FLOP utilization 49%' in out
  assert 'NOT met: lowest sampling speedup over the naive sampler 9.0x' in out
  assert 'NOT met: samples identical to the naive sampler\'s False' in out
  assert 'NOT met: input pipeline / fastest training 8x' in out
  # A file without the importance-weighted bound prints without its columns and check.
  assert 'IW' not in out and 'importance-weighted' not in out


def _bound(passes_per_second, utilization, ratio, **extra):
  return dict(iw_examples=100, iw_num_samples=10, iw_batch_size=100, iw_samples_per_chunk=10,
              iw_decoder_passes_per_second=passes_per_second, iw_flop_utilization=utilization,
              iw_to_train_utilization=ratio, **extra)


def test_importance_weighted_bound_columns_and_check(tmp_path, capsys, load_script):
  path = _write(tmp_path, {
      '---': _family(300., .61, **_bound(1234.4, .55, .9, suite_seconds=1500.2)),
      '-+-': _family(100., .55, **_bound(250., .37, .69)),
  }, pipeline=1e5)
  load_script('bench_table').main(path)
  out = capsys.readouterr().out
  assert out.startswith(
      '| family | train images/s | FLOP util. | XLA images/s | eval images/s | '
      '10 samples (s) | naive (s) | IW passes/s | IW FLOP util. | IW / train util. | '
      'suite (s) |\n|---|---|---|---|---|---|---|---|---|---|---|\n')
  assert '| `---` | 300.0 | 61% |  | 500 | 2.00 |  | 1,234 | 55% | 0.90 | 1,500 |' in out
  assert '| `-+-` | 100.0 | 55% |  | 500 | 2.00 |  | 250 | 37% | 0.69 |  |' in out
  assert 'importance-weighted bound: 100 examples x K=10' in out
  # The worst family decides: 0.69 < 0.70.
  assert ('NOT met: lowest importance-weighted bound / training FLOP utilization 0.69x '
          '(target >= 0.70x)') in out


def test_bad_file_is_a_one_line_error(tmp_path, load_script):
  path = tmp_path / 'bench.json'
  path.write_text('{"families": {}}')
  with pytest.raises(SystemExit, match='is not a brokenelbo.bench JSON file'):
    load_script('bench_table').main(str(path))


def test_family_without_a_measurement_is_a_one_line_error(tmp_path, load_script):
  result = _family(300., .61)
  del result['eval_images_per_second']
  with pytest.raises(SystemExit, match=r"--- lacks \['eval_images_per_second'\]"):
    load_script('bench_table').main(_write(tmp_path, {'---': result}, pipeline=1e5))
