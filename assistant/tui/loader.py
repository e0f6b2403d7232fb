"""How the app gets its model: the configured model server, or a worker process that resolves
(downloads or builds when needed) and loads the model.

The loader runs in a thread worker of the app. An in-process model lives in its own process
(engine/worker.py), so generating never competes with the UI for the interpreter; with `server_url`
the model server answers (engine/remote.py) and nothing is loaded here.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.engine.base import Backend, LoadProgress
from assistant.settings import Settings

BackendLoader = Callable[[LoadProgress], Backend]


def backend_loader(settings: Settings) -> BackendLoader:
    def load(progress: LoadProgress) -> Backend:
        if settings.server_url:  # a team's model server answers: nothing to load here
            from assistant.engine.remote import RemoteBackend

            return RemoteBackend.connect(settings, progress)
        from assistant.engine.worker import ProcessBackend

        return ProcessBackend.start(settings, progress)

    return load
