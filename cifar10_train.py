"""Train a CIFAR-10 classifier from a preset, a config file or a search study's best trial.

    python cifar10_train.py --preset seed --epochs 10      # train/validation split
    python cifar10_train.py --config best_config.json --full

Run ``python cifar10_train.py --help`` for every option.
"""

import sys

from search.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
