"""Bulk allocation in a test as in the product: under the GC tuning every auditwatch command runs with."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

from auditwatch.startup import tune_gc


@contextmanager
def product_gc() -> Iterator[None]:
    """`auditwatch.startup.tune_gc` inside, undone after.

    Without it, making a few hundred thousand events triggers full collections that walk every object the
    test session holds, again and again: most of a big test's time, and more the longer the session.
    """
    threshold = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
