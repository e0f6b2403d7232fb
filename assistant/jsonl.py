"""JSON and JSONL from files: the one reader, every failure an InputError that names the file and line.

Used by `assistant import`, the dataset exporter, retrain's reading of a snapshot and the demo's
samples. A file is read only when it is a regular file (a FIFO would block and `/dev/zero` never
ends) and not larger than the caller's limit. A value is refused when it is nested too deeply for
the parser, holds a number with too many digits to convert, or holds a lone surrogate (a `\\ud800`
escape: no UTF-8 encodes it, so every later write of it would fail). Lines end at "\\n" only: JSON
strings may hold U+2028 and other characters that `str.splitlines()` breaks at.
"""

from __future__ import annotations

import json
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from assistant.text import is_utf8

# A lone surrogate can only come from an escape (UTF-8 text cannot hold one): look closer only then.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def read_limited(path: Path, limit: int | None = None, *, what: str = "the limit") -> bytes:
    """The bytes of a regular file, or an InputError: missing, a directory, a pipe or device, larger
    than `limit` bytes (`what` names the limit in the message), unreadable."""
    try:
        # O_NONBLOCK: opening a FIFO without a writer would wait for one; a regular file ignores it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            raise InputError(f"{path} is a directory, not a file")
        raise InputError(f"{path} is not a regular file (a pipe, device or socket); save it to a file first")
    with os.fdopen(fd, "rb") as handle:
        try:
            data = handle.read() if limit is None else handle.read(limit + 1)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror}") from None
    if limit is not None and len(data) > limit:
        raise InputError(f"{path} is larger than {what} ({limit} bytes)")
    return data


def read_text(path: Path, limit: int | None = None, *, what: str = "the limit") -> str:
    """The file as UTF-8 text (a byte-order mark dropped), with read_limited's checks."""
    try:
        return read_limited(path, limit, what=what).decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text") from None


def loads(text: str, where: str) -> Any:
    """One JSON value, or an InputError saying at `where` what is wrong with it."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        position = f"line {exc.lineno} column {exc.colno}" if exc.lineno > 1 else f"column {exc.colno}"
        raise InputError(f"{where}: not valid JSON ({exc.msg} at {position})") from None
    except RecursionError:
        raise InputError(f"{where}: not valid JSON (nested too deeply)") from None
    except ValueError:  # int() refuses numbers of more than sys.get_int_max_str_digits() digits
        raise InputError(f"{where}: not valid JSON (a number too long to read)") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise InputError(f"{where}: a string holds a lone surrogate (such as \\ud800), which is not text")
    return value


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and not is_utf8(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def parse_lines(text: str, name: str) -> Iterator[tuple[Any, str]]:
    """Each non-blank line's value with where it came from (`name line N`)."""
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if line.strip():
            where = f"{name} line {number}"
            yield loads(line, where), where


def read_jsonl(path: Path, *, limit: int | None = None, objects: bool = True) -> list[tuple[Any, str]]:
    """Every line's value of a JSONL file with where it came from; `objects`: each must be an object."""
    rows = list(parse_lines(read_text(path, limit), path.name))
    if objects:
        for row, where in rows:
            if not isinstance(row, dict):
                raise InputError(f"{where}: expected a JSON object")
    return rows
