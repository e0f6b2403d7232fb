"""Adapter versions on the model server: loaded and proven before they become active, unloaded after.

With a model server (`server_url`), every chat asks the server for the active version by its name.
So whatever makes a version active (retrain, `assistant models promote|rollback`, the F2 screen)
first loads it into the server and has it answer (`prepare`): a version the server refuses is not
promoted, and the one serving keeps serving. A server that cannot be reached does not stop a
promotion: the chats load the version themselves when it is back.

The server keeps what may be asked for next (`keep`, read from the store): the active version, the one
a rollback returns to (instant rollback), and the newest candidate (comparisons); `prune` unloads this
data dir's other versions. Chats that still ask for an unloaded version load it again (engine/remote.py).
Only `keep` reads the store, so the rest can run in a UI's worker thread.

No torch or textual here.
"""

from __future__ import annotations

import logging
from pathlib import Path

from assistant.adapters.registry import VERSION
from assistant.errors import ServerError
from assistant.settings import Settings

log = logging.getLogger(__name__)


def keep(store) -> set[str]:  # noqa: ANN001
    """The versions the server should hold: active, the rollback target, the newest candidate."""
    wanted: set[str] = set()
    active = store.active_adapter()
    if active is not None:
        wanted.add(active.version)
        target = store.rollback_target()
        if target is not None:
            wanted.add(target)
    candidates = [r.version for r in store.adapters() if r.status == "candidate"]
    if candidates:
        wanted.add(max(candidates))
    return wanted


def prepare(settings: Settings, version: str | None) -> str | None:
    """Load `version` into the configured model server and prove it answers, before it becomes active.

    Nothing to do without a server, or for the base model (None). Raises ModelError when the server
    refuses the version (or it fails the checks); returns a warning when the server cannot be reached.
    """
    if not settings.server_url or version is None:
        return None
    from assistant.engine.remote import RemoteBackend, ServerAPI

    backend = RemoteBackend(ServerAPI.from_settings(settings), settings)
    try:
        backend.swap_adapter(version, settings.layout.version(version))
    except ServerError as exc:
        return f"{exc}; the chats load {version} when the server is back"
    finally:
        backend.close()
    return None


def prune(api, held: set[str], settings: Settings) -> list[str]:  # noqa: ANN001
    """Unload this data dir's versions that `held` (see `keep`) does not name; returns those unloaded."""
    ours = Path(settings.server_adapters_dir) if settings.server_adapters_dir else settings.layout.adapters.resolve()
    unloaded = []
    for model in api.models():
        if model.parent is None or model.id in held or not VERSION.match(model.id):
            continue
        if model.root is None or Path(model.root).parent != ours:
            continue  # not one of this data dir's versions (another team's, a pinned directory)
        if api.unload_adapter(model.id):
            unloaded.append(model.id)
    if unloaded:
        log.info("unloaded %s from the model server at %s", ", ".join(unloaded), api.address)
    return unloaded


def tidy(settings: Settings, held: set[str]) -> str | None:
    """After the active version changed: prune the configured server. Returns a warning if it could not."""
    if not settings.server_url:
        return None
    from assistant.engine.remote import ServerAPI

    api = ServerAPI.from_settings(settings)
    try:
        prune(api, held, settings)
    except ServerError as exc:
        return f"could not unload older versions: {exc}"
    finally:
        api.close()
    return None
