"""SIGINT and SIGTERM for every command: within `sigterm_raises`, SIGTERM raises like Ctrl-C does,
and both are recorded, so a signal HiGHS swallows (it reports "error" or "infeasible" instead) still
ends the command 128 + signal. Standard library only: `fleet` installs it around every command."""
from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator


class _Signalled(BaseException):
    """Raised by the SIGTERM handler: a BaseException, so `evaluate` never mistakes it for a bad point."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """Within: SIGTERM raises like Ctrl-C does, so the study can stop its pool and keep its rows.
    Both are also recorded (`received`): a signal that lands while HiGHS runs in this process is
    raised inside its callback, and HiGHS reports "error" instead of letting it through — the study
    must still stop, not write that point as failed and go on."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum, frame):
        _RECEIVED.append(signum)
        raise _Signalled(signum)

    def on_int(signum, frame):
        _RECEIVED.append(signum)
        raise KeyboardInterrupt

    _RECEIVED.clear()
    before = signal.signal(signal.SIGTERM, on_term)
    before_int = signal.signal(signal.SIGINT, on_int) if signal.getsignal(signal.SIGINT) is signal.default_int_handler else None
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
        if before_int is not None:
            signal.signal(signal.SIGINT, before_int)


_RECEIVED: list[int] = []


def raise_if_signalled() -> None:
    """Raise the stop a signal asked for, if one arrived (see sigterm_raises)."""
    if _RECEIVED:
        signum = _RECEIVED[-1]
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise _Signalled(signum)


@contextmanager
def signals_ignored() -> Iterator[None]:
    """Within: a second Ctrl-C/SIGTERM does not cut the clean-up short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def signal_number(exc: BaseException) -> int:
    return exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
