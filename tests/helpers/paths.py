"""Paths as the README and docs write them, shared by the tests that check those paths exist."""
import itertools
import re


def expand(path):
    """``path`` with every ``{a,b}`` alternative written out."""
    parts = re.split(r'\{([^{}]*)\}', path)
    choices = [[p] if i % 2 == 0 else p.split(',') for i, p in enumerate(parts)]
    return [''.join(c) for c in itertools.product(*choices)]
