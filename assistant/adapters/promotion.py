"""Promoting a version: the one set of checks that `assistant models promote` and the F2 screen run.

In order: who may (with `curators` set, only they change the active version, as they curate), what the
store says (not deleted; a version the eval gate rejected only with `force`), the files (the version
directory inside the data dir and no symbolic links, checksums, and the weights as a chat checks them
before serving: a safetensors header that parses, finite values, LoRA ranks as configured), then the
model server (adapters/serving.prepare), and only then the store's active row. `check` reads the store
(the caller's thread); `verify` only files and the server (a worker may run it); `promote` runs both
and activates, for callers that may wait.
"""

from __future__ import annotations

from assistant.adapters import registry, serving
from assistant.curation import require_curator
from assistant.errors import GateRejected, NotFoundError
from assistant.settings import Settings
from assistant.store import AdapterRecord, Store


def gate_rejected(record: AdapterRecord) -> str | None:
    """Why the eval gate rejected this version, or None when it did not."""
    verdict = record.report.get("verdict") if record.report else None
    if record.status != "rejected" and verdict != "reject":
        return None
    return str((record.report or {}).get("reason") or record.reason or "rejected")


def check(settings: Settings, store: Store, version: str, *, force: bool = False) -> AdapterRecord:
    """The version's record if it may be promoted; NotAllowedError, NotFoundError or GateRejected if not."""
    require_curator(settings)
    record = store.adapter(version)
    if record.deleted_at:
        raise NotFoundError(f"adapter {version} was deleted")
    why = gate_rejected(record)
    if why is not None and not force:
        raise GateRejected(
            f"{version} was rejected by the eval gate ({why}); it was not promoted",
            hint="promote it anyway with --force",
        )
    return record


def verify(settings: Settings, version: str) -> str | None:
    """The files as a chat checks them before serving, then (with a model server) the version loaded
    there and proven; a ModelError when it must not serve. Returns the server's warning, if any."""
    directory = registry.version_dir(settings.data_dir, version)
    registry.check_files(directory)
    registry.check_weights(directory)
    return serving.prepare(settings, version)


def promote(settings: Settings, store: Store, version: str, *, reason: str, force: bool = False) -> tuple[AdapterRecord, str | None]:
    """Check, verify and make `version` the active one; the new record and the server's warning."""
    check(settings, store, version, force=force)
    warning = verify(settings, version)
    return store.promote(version, actor=settings.user, reason=reason), warning
