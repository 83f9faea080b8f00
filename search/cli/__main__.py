"""``python -m search.cli``: the whole program, as the console script runs it."""

import sys

from search.cli import program

sys.exit(program())
