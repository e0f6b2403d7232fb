"""How the app gets its model: resolve (download or build when needed) and load, off the event loop."""

from __future__ import annotations

from collections.abc import Callable

from assistant.engine.base import Backend, LoadProgress
from assistant.settings import Settings

BackendLoader = Callable[[LoadProgress], Backend]


def backend_loader(settings: Settings) -> BackendLoader:
    def load(progress: LoadProgress) -> Backend:
        from assistant.engine.local import load_local_backend
        from assistant.engine.resolve import resolve_model

        choice = resolve_model(settings, progress)
        return load_local_backend(
            choice,
            device=settings.device,
            cpu_load_in_4bit=settings.cpu_load_in_4bit,
            adapter=settings.adapter,
            progress=progress,
        )

    return load
