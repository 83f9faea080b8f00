"""Evaluate a trained run once on the 10,000 held-out CIFAR-10 test images.

    python cifar10_test.py                 # the newest run under results/
    python cifar10_test.py --run DIR --tta

Run ``python cifar10_test.py --help`` for every option.
"""

import sys

from search.cli import test_main

if __name__ == "__main__":
    sys.exit(test_main())
