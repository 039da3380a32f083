"""Fuzz tests: garbage and CBOR bombs against the sans-IO core.

``watchdog`` turns a hang into a test failure instead of a stuck CI job.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager


class Hang(AssertionError):
    """The code under test did not return in time."""


@contextmanager
def watchdog(seconds: float) -> Iterator[None]:
    """Fail with ``Hang`` if the block runs longer than ``seconds``.

    It uses SIGALRM, so it works on Unix, in the main thread, and interrupts Python code
    (not a single long call into C, which is only stopped when it returns). A Hang that the
    code under test catches is raised again when the block ends.
    """

    fired = False

    def on_alarm(signum: int, frame: object) -> None:
        nonlocal fired
        fired = True
        raise Hang(f"no answer within {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    if fired:
        # The code under test caught the Hang (e.g. ``except Exception``) and went on.
        raise Hang(f"no answer within {seconds} s (the alarm was caught and hidden)")
