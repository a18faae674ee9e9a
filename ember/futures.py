"""ember.futures: torch.futures.Future's shape, for the results of asynchronous work.

A Future holds a value that may not exist yet. It completes in one of two ways:
`set_result` from whoever produces the value, or (for collectives) a `waiter` that
blocks until the communication engine has finished and then returns the value.
`then(callback)` chains a computation on the value; callbacks run in the thread that
completes the future (PyTorch runs them on its own thread pool; ember has none): at
once for a future completed by `set_result`, and, for a collective's future, when
someone waits for it (or polls `done()`).
"""
from __future__ import annotations


class Future:
    """torch.futures.Future: wait(), value(), done(), then(), set_result(), set_exception()."""

    def __init__(self, waiter=None, poller=None):
        self._waiter = waiter            # () -> value, blocks until ready
        self._poller = poller            # () -> bool, True once ready (never blocks)
        self._done = False
        self._value = None
        self._error: BaseException | None = None
        self._callbacks: list = []

    def done(self) -> bool:
        if not self._done and self._poller is not None and self._poller():
            self._complete_from_waiter()
        return self._done

    def wait(self):
        if not self._done:
            if self._waiter is None:
                raise RuntimeError("Future.wait(): the future has no producer and was never "
                                   "completed with set_result()")
            self._complete_from_waiter()
        return self.value()

    def value(self):
        if not self._done:
            raise RuntimeError("Future.value() called before the future completed; call "
                               "wait() first")
        if self._error is not None:
            raise self._error
        return self._value

    def set_result(self, result) -> None:
        if self._done:
            raise RuntimeError("Future can only be marked completed once")
        self._done, self._value = True, result
        self._run_callbacks()

    def set_exception(self, error: BaseException) -> None:
        if self._done:
            raise RuntimeError("Future can only be marked completed once")
        self._done, self._error = True, error
        self._run_callbacks()

    def then(self, callback) -> "Future":
        """A future of `callback(self)`, run as soon as this one completes (in the
        thread that completes it, as PyTorch runs it), or when the result is waited."""
        chained = Future(waiter=lambda: chained._value_after(self),
                         poller=lambda: self.done() and chained._done)

        def run(parent):
            try:
                value = callback(parent)
            except BaseException as err:   # noqa: BLE001 - handed to whoever waits
                chained.set_exception(err)
            else:
                chained.set_result(value)

        self.add_done_callback(run)
        return chained

    def add_done_callback(self, callback) -> None:
        if self._done:
            callback(self)
        else:
            self._callbacks.append(callback)

    # --- internals -------------------------------------------------------------------
    def _value_after(self, parent: "Future"):
        """A chained future's waiter: completing the parent runs the callback."""
        try:
            parent.wait()
        except BaseException:              # noqa: BLE001 - the callback saw it
            pass
        return self.value()

    def _wait_self(self) -> "Future":
        self.wait()
        return self

    def _complete_from_waiter(self) -> None:
        try:
            value = self._waiter()
        except BaseException as err:       # noqa: BLE001 - handed to whoever waits
            if not self._done:
                self.set_exception(err)
            raise
        if not self._done:
            self.set_result(value)

    def _run_callbacks(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for cb in callbacks:
            cb(self)


def collect_all(futures: list) -> Future:
    """torch.futures.collect_all: a future of the list of (completed) futures."""
    futures = list(futures)
    return Future(waiter=lambda: [f._wait_self() for f in futures],
                  poller=lambda: all(f.done() for f in futures))


def wait_all(futures: list) -> list:
    """torch.futures.wait_all: wait every future; return their values."""
    return [f.wait() for f in futures]
