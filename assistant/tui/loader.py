"""How the app gets its model: the configured model server, or a worker process that resolves
(downloads or builds when needed) and loads the model.

The loader runs in a thread worker of the app. An in-process model lives in its own process
(engine/worker.py), so generating never competes with the UI for the interpreter; with `server_url`
the model server answers (engine/remote.py) and nothing is loaded here. `stop()` ends a load in
progress at once (the app quits while the demo model builds): the worker process cleans up and exits.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from assistant.engine.base import Backend, LoadProgress
from assistant.errors import ModelError
from assistant.settings import Settings

BackendLoader = Callable[[LoadProgress], Backend]


@runtime_checkable
class StoppableLoader(Protocol):
    """A loader whose load in progress can be stopped from another thread."""

    def __call__(self, progress: LoadProgress) -> Backend: ...

    def stop(self) -> None: ...


class ModelLoader:
    """The configured model: the model server's backend, or the model in a worker process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._stopped = False
        self._loading = None  # the ProcessBackend being loaded

    def __call__(self, progress: LoadProgress) -> Backend:
        if self.settings.server_url:  # a team's model server answers: nothing to load here
            from assistant.engine.remote import RemoteBackend

            return RemoteBackend.connect(self.settings, progress)
        from assistant.engine.worker import ProcessBackend

        backend = ProcessBackend(self.settings)
        with self._lock:
            if self._stopped:
                raise ModelError("loading the model was stopped")
            self._loading = backend
        try:
            backend.load(progress)
        finally:
            with self._lock:
                self._loading = None
                stopped = self._stopped
        if stopped:  # loaded just as the app quit: nobody will close it
            backend.close()
            raise ModelError("loading the model was stopped")
        return backend

    def stop(self) -> None:
        """End the load in progress, if any, and any later one; returns at once."""
        with self._lock:
            self._stopped = True
            loading = self._loading
        if loading is not None:
            loading.abort()


def backend_loader(settings: Settings) -> ModelLoader:
    return ModelLoader(settings)
