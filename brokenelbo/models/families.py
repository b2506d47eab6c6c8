"""The paper's 12 model families, named (encoder, decoder, marginal) as in Section 5.

`-` encoder: Gaussian; `+`: Gaussian + IAF. `-` decoder: factorised Bernoulli; `+`: PixelCNN.
`-` marginal: N(0, I); `+`: MAF; `v`: VampPrior. Each family has `configs/<name>.gin`.
"""

from brokenelbo import errors

ENCODERS = ('-', '+')
DECODERS = ('-', '+')
MARGINALS = ('-', '+', 'v')
FAMILIES = tuple(e + d + m for e in ENCODERS for d in DECODERS for m in MARGINALS)


def check_families(families):
  """Raises `errors.UserError` naming any entry of `families` that is not one of `FAMILIES`."""
  unknown = [f for f in families if f not in FAMILIES]
  if unknown:
    raise errors.UserError(f'unknown families {unknown}; choose from {list(FAMILIES)}')
