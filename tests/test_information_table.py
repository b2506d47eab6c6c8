"""`scripts/information_table.py`: the information table of docs/broken_elbo.md and its bound checks."""

import csv

from brokenelbo.experiments import sweep


def _write(path, rows):
  with open(path, 'w', newline='') as f:
    writer = csv.DictWriter(f, fieldnames=sweep.columns([1, 10]))
    writer.writeheader()
    for row in rows:
      writer.writerow(row)


def _row(family, beta, **changes):
  row = dict(family=family, encoder=family[0], decoder=family[1], marginal=family[2],
             dataset='static_mnist', beta=beta, anneal=0, seed=0, epochs=1, rate=20.,
             distortion=80., elbo=-100., train_rate=20., train_distortion=80.,
             train_elbo=-100., nll_k1=100., nll_k1_stderr=0.5, nll_k10=98.,
             nll_k10_stderr=0.5, mutual_information=5., mutual_information_stderr=0.01,
             rate_information=20., rate_information_stderr=0.2, marginal_kl=15.,
             marginal_kl_stderr=0.2, log_num_examples=6.2146, active_units=10,
             generative_e=3., generative_e_stderr=0.5, generative_g=30.,
             generative_g_stderr=1., generative_g_num_samples=10, likelihood_examples=500,
             information_examples=500, generative_examples=100, run_dir='x')
  row.update(changes)
  return row


def test_table_in_family_order_and_bounds_pass(tmp_path, load_script, capsys):
  path = tmp_path / 'r.csv'
  # NLL_10 above NLL_1 but within 4 standard errors: not a violation.
  _write(path, [_row('++v', 1), _row('---', 0.1, nll_k10=101.9), _row('---', 1),
                _row('--+', 1, mutual_information='')])
  assert load_script('information_table').main(str(path)) == 0
  out = capsys.readouterr().out
  lines = [line for line in out.splitlines() if line.startswith('| `')]
  assert [line.split('|')[1:3] for line in lines] == [
      [' `---` ', ' 0.1 '], [' `---` ', ' 1 '], [' `++v` ', ' 1 ']]
  assert 'log 500 = 6.215 nats' in out and 'all hold.' in out


def test_each_broken_bound_is_reported_and_fails(tmp_path, load_script, capsys):
  path = tmp_path / 'r.csv'
  _write(path, [_row('---', 1, nll_k10=104.1), _row('-+v', 1, mutual_information=6.3),
                _row('+--', 1, mutual_information=5., rate_information=4.),
                _row('++-', 1, generative_e=40.)])
  assert load_script('information_table').main(str(path)) == 1
  failed = [line for line in capsys.readouterr().out.splitlines()
            if line.startswith('FAILED')]
  assert failed == ['FAILED --- beta 1 anneal 0: NLL_10 104.10 > NLL_1 100.00',
                    'FAILED -+v beta 1 anneal 0: I_e 6.3000 > log N 6.2146',
                    'FAILED +-- beta 1 anneal 0: I_e 5.000 > R 4.000',
                    'FAILED ++- beta 1 anneal 0: E 40.00 > G 30.00']
