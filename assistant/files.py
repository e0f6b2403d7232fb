"""Files and directories the product writes whole or not at all.

`write_atomic` (`history export -o`, `dataset export`): the text goes to a temporary file in the target's
directory, is flushed to disk and renamed over the target, so a full disk or a crash leaves the previous
file as it was. A full disk is a DiskFullError ("no space left", its own exit code); any other failure to
write an InputError naming the file.

`build_once` (the demo model, a converted model in `models/`): a directory built in a staging directory
beside it, under a lock, and renamed into place when complete.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from filelock import FileLock

from assistant.errors import AssistantError, DiskFullError, InputError


def write_atomic(path: Path, text: str) -> None:
    """`text` as UTF-8 ("\\n" written as is) into `path`, replacing it only once it is all on disk."""
    directory = path.parent
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise write_error(path, exc) from None
        raise


def write_error(path: Path, exc: OSError) -> AssistantError:
    """The error to report for an OSError while writing `path`."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left to write {path}; it was not changed")
    return InputError(f"cannot write {path}: {exc.strerror or exc}")


def build_once(target: Path, is_complete: Callable[[Path], bool], build: Callable[[Path], object]) -> Path:
    """`target`, made by `build(staging)` first unless `is_complete(target)`. Safe when several processes
    start at once: one builds under `.<name>.lock`, the others wait and reuse its result.

    `build` fills an empty staging directory beside `target` (named `<name>.<random>`, so scratch
    directories it makes with that prefix are swept too), renamed into place once its files are on
    disk. An interrupted build removes it as it unwinds; one that was killed leaves it, and the next
    build (under the same lock, so no other build is using it) removes it and starts again."""
    if is_complete(target):
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(parent / f".{target.name}.lock")):
        if is_complete(target):
            return target
        for stale in parent.glob(f"{target.name}.*"):
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=parent))
        try:
            build(staging)
            for file in staging.iterdir():
                if file.is_file():
                    with open(file, "rb") as handle:
                        os.fsync(handle.fileno())
            os.replace(staging, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
