"""Signals: Ctrl-C and SIGTERM end a command at once, at any point, leaving no partial file."""

from __future__ import annotations

import os

from bayes_scaling.cli._common import say


def exit_on_signals():
    """Make Ctrl-C and SIGTERM end the process at once, at any point, leaving no partial file.

    Python runs its own signal handlers only between bytecodes, so a signal that arrives during
    XLA compilation or sampling would wait for it to finish. The C-level handler writes the
    signal number to a pipe instead, and a watcher thread removes unfinished output files and
    exits with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM). Returns a function
    that restores the previous handlers.
    """
    import signal
    import threading

    from bayes_scaling._files import remove_pending

    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)

    def watch():
        try:
            data = os.read(read_fd, 1)
        except OSError:
            return
        if data:
            remove_pending()
            say("interrupted")
            os._exit(128 + data[0])

    threading.Thread(target=watch, daemon=True, name="bayes-scaling-signals").start()

    def restore():
        signal.set_wakeup_fd(previous_fd)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        os.close(write_fd)

    return restore
