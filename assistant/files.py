"""Files the product writes for users (`history export -o`, `dataset export`): written whole or not at all.

The text goes to a temporary file in the target's directory, is flushed to disk and renamed over the
target, so a full disk or a crash leaves the previous file as it was. A full disk is a DiskFullError
("no space left", its own exit code); any other failure to write an InputError naming the file.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

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
