"""Tests for `scripts/rd_table.py`: the sweep table of docs/broken_elbo.md and its summary lines."""

import pytest

_HEADER = ('family,encoder,decoder,marginal,dataset,beta,anneal,seed,epochs,rate,distortion,'
           'elbo,train_rate,train_distortion,train_elbo,run_dir')


def _write(tmp_path, runs):
  """Writes a sweep CSV of (family, beta, anneal, rate, distortion) runs."""
  lines = [_HEADER]
  for family, beta, anneal, rate, distortion in runs:
    encoder, decoder, marginal = family
    elbo = -(rate + distortion)
    lines.append(f'{family},{encoder},{decoder},{marginal},static_mnist,{beta},{anneal},0,1,'
                 f'{rate},{distortion},{elbo},{rate},{distortion},{elbo},runs/{family}')
  path = tmp_path / 'rd.csv'
  path.write_text('\n'.join(lines) + '\n')
  return str(path)


def test_table_and_summary(tmp_path, capsys, load_script):
  path = _write(tmp_path, [
      ('---', 0.1, 0, 104.31, 62.44),
      ('---', 10, 0, 0.96, 189.83),
      ('---', 1, 0, 1.5, 195.),      # Low rate, more distortion than at beta 10.
      ('-+v', 1, 0, 0.0005, 85.11),
      ('-+v', 1, 0.5, 2.99, 82.04),  # The best -ELBO (85.03), an annealed run.
      ('-+v', 0.5, 0, 2.5, 84.),     # Lower distortion, but rate above 2 nats.
  ])
  load_script('rd_table').main(path)
  out = capsys.readouterr().out.splitlines()
  # Columns sorted by (anneal, beta): the annealed run's column comes last.
  assert out[0] == ('| family | beta 0.1 | beta 0.5 | beta 1 | beta 10 | '
                    'beta 1, anneal 0.5 |')
  assert out[1] == '|---|---|---|---|---|---|'
  assert out[2] == '| `---` | 104.3 / 62.4 |  | 1.5 / 195.0 | 1.0 / 189.8 |  |'
  assert out[3] == '| `-+v` |  | 2.5 / 84.0 | 0.0 / 85.1 |  | 3.0 / 82.0 |'
  assert len([line for line in out if line.startswith('| `')]) == 2
  assert '6 runs; best -ELBO 85.03 nats (`-+v`, beta 1, anneal 0.5).' in out
  assert ('Lowest distortion at rate <= 2 nats, `-` decoder: 189.83 (`---`, beta 10, '
          'rate 0.96).') in out
  assert ('Lowest distortion at rate <= 2 nats, `+` decoder: 85.11 (`-+v`, beta 1, '
          'rate 0.00).') in out


def test_decoder_without_low_rate_runs(tmp_path, capsys, load_script):
  path = _write(tmp_path, [('---', 0.1, 0, 104.3, 62.4), ('-+-', 0.1, 0, 125.3, 47.3)])
  load_script('rd_table').main(path)
  out = capsys.readouterr().out.splitlines()
  assert 'No `-`-decoder run has rate <= 2 nats.' in out
  assert 'No `+`-decoder run has rate <= 2 nats.' in out


def test_bad_file_is_a_one_line_error(tmp_path, load_script):
  path = tmp_path / 'rd.csv'
  path.write_text('family,beta\n---,1\n')
  module = load_script('rd_table')
  with pytest.raises(module.errors.UserError, match='lack the columns'):
    module.main(str(path))
