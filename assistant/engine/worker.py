"""A backend in its own process, so the model never competes with the UI for the interpreter.

The chat app serves its model from here. Generating with a small model is mostly Python; in the app's
own process it would share the GIL with rendering, and key presses would wait behind tokens. The
worker process loads the configured model with `open_backend` and serves one reply at a time over a
pipe. Cancelling sets an event shared with the worker, which generation checks at every token.
Adapters are swapped between replies: a swap waits until no reply is open, and no reply starts
until the worker has answered it.

Quitting while the model loads (the demo model may be building for minutes) must not wait for it:
`abort()` sends the worker SIGTERM, on which it unwinds at once (a build removes its staging
directory and releases its lock) and exits without a word; the load waiting for it ends, and kills
it if it has not gone within ABORT_GRACE_S. SIGHUP (the terminal closed) stops it the same way, and
so does finding the app gone (a broken pipe).

Protocol (parent -> worker): ("stream", messages, params, alternate), ("swap", version, path or None),
("alternate", version or None, path or None), ("check", messages, params), ("stop",). Worker -> parent:
("progress", text, fraction), ("ready", identity), ("start", token_budget, identity), ("chunk", text, tokens),
("end",), ("swapped", identity), ("alternated", identity or None), ("checked",), ("error", kind, message, hint).

This module must stay importable without torch: the parent never loads it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from assistant import errors
from assistant.engine.base import ChatMessage, GenerationParams, LoadProgress, ModelIdentity, Reply
from assistant.settings import Settings

log = logging.getLogger(__name__)

STOP_TIMEOUT_S = 5.0
ABORT_GRACE_S = 1.0  # how long an aborted worker has to clean up before it is killed
POLL_S = 0.1
QUIT_SIGNALS = (signal.SIGTERM, signal.SIGHUP)  # the app stops the worker; the terminal closed


class ProcessBackend:
    """The configured model, loaded and run in a child process. Create with `ProcessBackend.start`.

    Replies are read by one consumer at a time; `swap_adapter` may be called from any thread.
    """

    def __init__(self, settings: Settings) -> None:
        ensure_resource_tracker()
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._cancel = context.Event()
        self._process = context.Process(
            target=serve, args=(child, self._cancel, settings), name="assistant-model", daemon=True
        )
        self._child_conn = child
        self._identity: ModelIdentity | None = None
        self._alternate: ModelIdentity | None = None  # who answers alternate replies (A/B), once loaded
        self._idle = threading.Condition()  # guards the pipe between replies; notified when a reply closes
        self._open = False  # a reply was requested and its end not read yet
        self._starting = threading.Lock()  # orders starting the worker and aborting it
        self._aborted_at: float | None = None  # time.monotonic() of abort()

    @classmethod
    def start(cls, settings: Settings, progress: LoadProgress | None = None) -> ProcessBackend:
        """Start the worker and wait until its model is loaded, passing on its progress."""
        return cls(settings).load(progress)

    def load(self, progress: LoadProgress | None = None) -> ProcessBackend:
        """Start the worker and wait until its model is loaded, passing on its progress. After
        `abort()` (from another thread) raises ModelError instead, once the worker is gone."""
        with self._starting:
            if self._aborted_at is not None:
                raise errors.ModelError("loading the model was stopped")
            self._process.start()
        self._child_conn.close()
        report = progress or (lambda text, fraction: None)
        try:
            while True:
                if not self._conn.poll(POLL_S):
                    self._kill_if_overdue()
                    continue
                kind, *payload = self._receive()
                if kind == "progress":
                    report(*payload)
                elif kind == "ready":
                    self._identity = payload[0]
                    return self
                elif kind == "error":
                    raise _error(*payload)
        except BaseException:
            self.close()
            raise

    def abort(self) -> None:
        """Stop a load in progress now (the app is quitting): the worker is sent SIGTERM, cleans up and
        exits; `load` ends with ModelError. Returns at once; callable from any thread."""
        with self._starting:
            if self._aborted_at is not None:
                return
            self._aborted_at = time.monotonic()
            pid = self._process.pid
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _kill_if_overdue(self) -> None:
        aborted = self._aborted_at
        if aborted is not None and time.monotonic() - aborted > ABORT_GRACE_S and self._process.is_alive():
            log.warning("the model process did not stop within %.1f s; killing it", ABORT_GRACE_S)
            self._process.kill()

    @property
    def pid(self) -> int | None:
        """The worker process's id (its memory is the model's)."""
        return self._process.pid

    @property
    def identity(self) -> ModelIdentity:
        assert self._identity is not None, "start() returns a loaded backend"
        return self._identity

    def _receive(self) -> tuple[Any, ...]:
        try:
            return self._conn.recv()
        except (EOFError, OSError):
            raise errors.ModelError("the model process stopped unexpectedly (details in the log)") from None

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._conn.send(message)
        except (BrokenPipeError, OSError):
            raise errors.ModelError("the model process is gone; restart the app") from None

    @property
    def alternate(self) -> ModelIdentity | None:
        """Who answers a reply asked with `alternate=True`; None while no second version is loaded."""
        return self._alternate

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        """Start a reply (`alternate`: the second version answers). One at a time: a reply left unread is
        stopped first. Waits for a swap in progress."""
        with self._idle:
            if self._open:
                self._finish_open_reply()
            self._cancel.clear()
            started = time.perf_counter()
            self._send(("stream", [ChatMessage(m.role, m.content) for m in messages], params, alternate))
            self._open = True
            kind, *payload = self._receive()
            if kind == "error":
                self._closed()
                raise _error(*payload)
        budget, identity = payload
        return Reply(self._chunks(), self._cancel, budget, identity=identity, started=started)

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        """Serve adapter `version` from `path` (None: the bare base model) from the next reply on.

        Waits until the open reply has been read to its end; no reply starts until the worker has
        swapped. A version that cannot be served raises its error and the current one keeps answering.
        """
        with self._idle:
            self._idle.wait_for(lambda: not self._open)
            self._send(("swap", version, None if path is None else str(path)))
            kind, *payload = self._receive()
            if kind == "error":
                raise _error(*payload)
            self._identity = payload[0]
            if self._alternate is not None and self._alternate.adapter == version:
                self._alternate = None  # the second version now serves (the worker reused it)
            return self._identity

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        """Load adapter `version` beside the one serving, to answer replies asked with `alternate=True`
        (None: unload it). Waits until the open reply has been read to its end. Errors as `swap_adapter`."""
        with self._idle:
            self._idle.wait_for(lambda: not self._open)
            self._send(("alternate", version, None if path is None else str(path)))
            kind, *payload = self._receive()
            if kind == "error":
                raise _error(*payload)
            self._alternate = payload[0]
            return self._alternate

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        """InputError when the model would refuse `messages` as too long (the worker's tokenizer counts)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._open)
            self._send(("check", [ChatMessage(m.role, m.content) for m in messages], params))
            kind, *payload = self._receive()
            if kind == "error":
                raise _error(*payload)

    def _chunks(self) -> Iterator[tuple[str, int]]:
        try:
            while True:
                kind, *payload = self._receive()
                if kind == "chunk":
                    yield payload[0], payload[1]
                    continue
                self._closed()
                if kind == "error":
                    raise _error(*payload)
                return
        finally:
            if self._open:  # the reader stopped early
                self._finish_open_reply()

    def _closed(self) -> None:
        with self._idle:
            self._open = False
            self._idle.notify_all()

    def _finish_open_reply(self) -> None:
        """Stop the reply in progress and read it to its end, so the next one starts on a clean pipe."""
        self._cancel.set()
        try:
            while self._receive()[0] not in {"end", "error"}:
                pass
        except errors.ModelError:
            pass
        self._closed()

    def health(self) -> str | None:
        return None if self._process.is_alive() else "the model process stopped unexpectedly (details in the log)"

    def close(self) -> None:
        """Stop the worker (it also ends with the app: it is a daemon process)."""
        if self._process.is_alive():
            self._cancel.set()  # a reply in progress ends at its next token
            try:
                self._conn.send(("stop",))
            except OSError:
                pass
            self._process.join(STOP_TIMEOUT_S)
            if self._process.is_alive():
                self._process.terminate()
                self._process.join(STOP_TIMEOUT_S)
        self._conn.close()


def ensure_resource_tracker() -> None:
    """Start multiprocessing's resource tracker with the real stderr.

    It hands `sys.stderr.fileno()` to its process; inside a Textual app sys.stderr is a capture
    object whose descriptor is not valid, and starting the tracker there fails. A no-op once the
    tracker runs.

    The tracker starts with SIGHUP blocked (as it blocks SIGINT and SIGTERM itself): when the terminal
    closes, every process of the chat's group gets SIGHUP, and a tracker killed by it would be started
    again by the app's next semaphore cleanup, then print tracebacks about semaphores it never saw.
    """
    from multiprocessing import resource_tracker

    captured = sys.stderr
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # inherited by the tracker
    try:
        sys.stderr = sys.__stderr__
        resource_tracker.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        sys.stderr = captured


def _error(kind: str, message: str, hint: str | None) -> errors.AssistantError:
    error_class = getattr(errors, kind, None)
    if not (isinstance(error_class, type) and issubclass(error_class, errors.AssistantError)):
        error_class = errors.ModelError
    return error_class(message, hint=hint)


def _answer(conn, answer: Callable[[], tuple[Any, ...]]) -> None:  # noqa: ANN001
    """Send what `answer()` returns, or the error it raises (Stopped ends the worker)."""
    try:
        message = answer()
    except Stopped:
        raise
    except BaseException as exc:
        _report(conn, exc)
        return
    conn.send(message)


def _report(conn, exc: BaseException) -> None:  # noqa: ANN001
    if isinstance(exc, errors.AssistantError):
        conn.send(("error", type(exc).__name__, exc.message, exc.hint))
    else:
        log.exception("the model worker failed")
        conn.send(("error", "ModelError", f"{type(exc).__name__}: {exc}", None))


class Stopped(BaseException):
    """The worker was told to stop by a signal (the app quits, the terminal closed): unwind and exit."""


class _StopOnce:
    """The worker's SIGTERM and SIGHUP handler: the first raises Stopped; later ones do nothing, so that
    they cannot cut the cleanup short (switching to SIG_IGN instead races with a pending signal)."""

    def __init__(self) -> None:
        self.signalled = False

    def __call__(self, signum: int, frame: Any) -> None:
        if not self.signalled:
            self.signalled = True
            raise Stopped(signum)


def serve(conn, cancel, settings: Settings) -> None:  # noqa: ANN001
    """The worker process: load the model, then answer stream and swap requests until told to stop.

    Requests are served in order, so the identity sent with "start" is the one that produces the reply.
    SIGTERM and SIGHUP, or an app that has gone away, end it quietly wherever it is: what it was doing
    cleans up as the exception unwinds (a demo model build removes its staging directory).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # ctrl+c belongs to the app, which stops us
    stop = _StopOnce()
    for quit_signal in QUIT_SIGNALS:
        signal.signal(quit_signal, stop)
    try:
        _serve(conn, cancel, settings)
    except (Stopped, BrokenPipeError, ConnectionResetError, EOFError):
        return  # nothing to tell: the app stopped us, or is gone


def _serve(conn, cancel, settings: Settings) -> None:  # noqa: ANN001
    from assistant.logs import quiet_libraries, setup_logging

    quiet_libraries()
    setup_logging(settings.log_path)
    try:
        import torch

        from assistant.engine.local import open_backend

        backend = open_backend(settings, lambda text, fraction: conn.send(("progress", text, fraction)))
    except (Stopped, BrokenPipeError):
        raise
    except BaseException as exc:  # everything is reported to the app (and logged), never printed over it
        _report(conn, exc)
        return
    if "OMP_NUM_THREADS" not in os.environ:
        # Loading (or building the demo model) had every core; replies leave the app one.
        torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    conn.send(("ready", backend.identity))
    while True:
        try:
            request = conn.recv()
        except (EOFError, OSError):
            return  # the app is gone
        if request[0] == "swap":
            _, version, path = request
            _answer(conn, lambda: ("swapped", backend.swap_adapter(version, None if path is None else Path(path))))
            continue
        if request[0] == "alternate":
            _, version, path = request
            _answer(conn, lambda: ("alternated", backend.load_alternate(version, None if path is None else Path(path))))
            continue
        if request[0] == "check":
            _, messages, params = request
            _answer(conn, lambda: (backend.check_prompt(messages, params), ("checked",))[1])
            continue
        if request[0] != "stream":
            return
        _, messages, params, alternate = request
        try:
            chunks, budget = backend.generate(messages, params, cancel, alternate=alternate)
        except Stopped:
            raise
        except BaseException as exc:
            _report(conn, exc)
            continue
        conn.send(("start", budget, backend.alternate if alternate else backend.identity))
        try:
            for text, tokens in chunks:
                conn.send(("chunk", text, tokens))
        except Stopped:
            raise
        except BaseException as exc:
            _report(conn, exc)
            continue
        conn.send(("end",))
