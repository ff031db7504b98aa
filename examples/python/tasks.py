"""Task functions for vow's Python worker (python3 -m vow.worker, or
examples/python/vow_worker.py): any public function of a module can be
one."""
import math
import random

import vow.worker


def square(x):
    return x * x


def word_count(text):
    return len(text.split())


def monte_carlo_pi(samples):
    """Hits inside the quarter circle, from the task's own seed: the same
    answer however many workers share the work."""
    rng = random.Random(vow.worker.seed())
    return sum(1 for _ in range(samples)
               if rng.random() ** 2 + rng.random() ** 2 <= 1.0)


def fail(message):
    raise ValueError(message)


def hypot(pair):
    return math.hypot(*pair)
