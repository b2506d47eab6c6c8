"""brokenelbo: a TensorFlow Probability reproduction of "Fixing a Broken ELBO"."""

import setuptools

setuptools.setup(
    name='brokenelbo',
    version='0.1.0',
    description='Reproduction of Alemi et al., "Fixing a Broken ELBO" (ICML 2018) in TFP.',
    packages=setuptools.find_packages(include=['brokenelbo', 'brokenelbo.*']),
    # The MNIST asset and the gin configs ship inside the package.
    package_data={'brokenelbo.data': ['assets/*'], 'brokenelbo.configs': ['*.gin'],
                  'brokenelbo.configs.libi': ['*.gin']},
    python_requires='>=3.10',
    # Versions that install and work together (checked with Python 3.11, 2026-11).
    install_requires=[
        'tensorflow==2.21.0',
        'tensorflow-probability==0.25.0',
        'tf-keras==2.21.0',
        'gin-config==0.5.0',
        'absl-py==2.5.1',
        'tensorflow-datasets==4.9.10',
        'tensorboard==2.21.0',
        'importlib_resources>=6',  # tensorflow-datasets imports it; declares it only <3.9.
        'numpy>=1.26,<2.5',
        'scipy>=1.11,<1.19',
        'matplotlib==3.11.2',
        'submitit==1.5.4',  # The sweep's Slurm launcher (experiments/launchers.py).
    ],
    extras_require={
        # pingouin: the reference Henze-Zirkler statistic of the tests.
        'test': ['pytest>=8,<10', 'pytest-xdist==3.8.0', 'parameterized==0.9.0',
                 'pingouin==0.7.0'],
    },
)
