"""brokenelbo: a TensorFlow Probability reproduction of *Fixing a Broken ELBO*.

Alemi, Poole, Fischer, Dillon, Saurous, Murphy. "Fixing a Broken ELBO". ICML 2018.
https://arxiv.org/abs/1711.00464
"""

__version__ = '0.1.0'
