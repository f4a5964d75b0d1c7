"""Stop signals (SIGTERM, Ctrl-C) that are never lost.

Python runs a signal handler at the next bytecode of the main thread, which may be inside a weakref
callback or a __del__ that a garbage collection triggered (accelerate calls gc.collect() as training
starts). An exception raised there is only printed ("Exception ignored in ...") and the run goes on
as if no signal had come: a sweep would finish the point and start the next one. So the handler
also records the signal, and the long loops (each training step, generation batch, phase and sweep
point) call `raise_if_stopped`, which raises it again where it cannot be swallowed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's time limit, `kill`), raised like Ctrl-C so that cleanup runs."""


_pending: type[KeyboardInterrupt] | None = None  # the stop a handler raised, until the run ends


def _on_signal(signum, frame) -> None:
    global _pending
    _pending = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    raise _pending()


def stop_requested() -> bool:
    """Whether a stop signal came (also one whose exception was swallowed)."""
    return _pending is not None


def raise_if_stopped() -> None:
    """Raise the stop signal received earlier, if any (its first exception may have been swallowed)."""
    if _pending is not None:
        raise _pending()


@contextmanager
def stop_signals() -> Iterator[None]:
    """SIGTERM and SIGINT raise Terminated / KeyboardInterrupt, and are remembered, while the block
    runs. Outside the main thread (a caller's worker thread) nothing changes: no handler can be set
    there. A signal the caller ignores (SIGINT in a job a script started in the background) stays ignored."""
    global _pending
    previous: dict[int, object] = {}
    try:
        for number in (signal.SIGTERM, signal.SIGINT):
            if signal.getsignal(number) is not signal.SIG_IGN:
                previous[number] = signal.signal(number, _on_signal)
    except ValueError:
        pass  # not the main thread
    if not previous:
        yield
        return
    outer, _pending = _pending, None  # a nested block starts clean and gives the outer one back its state
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _pending = outer
