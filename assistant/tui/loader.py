"""How the app gets its model: in a worker process, resolved (downloaded or built when needed) and loaded.

The loader runs in a thread worker of the app; the model itself lives in its own process
(engine/worker.py), so generating never competes with the UI for the interpreter.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.engine.base import Backend, LoadProgress
from assistant.settings import Settings

BackendLoader = Callable[[LoadProgress], Backend]


def backend_loader(settings: Settings) -> BackendLoader:
    def load(progress: LoadProgress) -> Backend:
        from assistant.engine.worker import ProcessBackend

        return ProcessBackend.start(settings, progress)

    return load
