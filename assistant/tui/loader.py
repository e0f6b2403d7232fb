"""How the app gets its model: resolve (download or build when needed) and load, off the event loop."""

from __future__ import annotations

from collections.abc import Callable

from assistant.engine.base import Backend, LoadProgress
from assistant.settings import Settings

BackendLoader = Callable[[LoadProgress], Backend]


def backend_loader(settings: Settings) -> BackendLoader:
    def load(progress: LoadProgress) -> Backend:
        from assistant.engine.local import open_backend  # torch: imported in the worker thread

        return open_backend(settings, progress)

    return load
