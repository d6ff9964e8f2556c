"""Pausing Python's cyclic garbage collector while many objects are built at once."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

__all__ = ["garbage_collector_paused"]


@contextlib.contextmanager
def garbage_collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while building many objects that form no garbage cycles.

    Building a node's module, a graph of thousands of nodes, or its picture allocates enough to trigger
    collections over the caller's whole heap, ever longer as modules accumulate (0.1 s each with
    thousands alive); paused, refcounting still frees what dies, and collection resumes afterwards.

    Example:
        >>> import gc
        >>> with garbage_collector_paused():
        ...     gc.isenabled()
        False
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
