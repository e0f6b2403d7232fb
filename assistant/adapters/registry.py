"""Adapter versions on disk: `adapters/vNNNN/` with the weights, their config and `meta.json`.

A version is written to a staging directory beside the others, flushed to disk and renamed into
place, so a reader sees a whole version or none; a published directory is never modified (the
files are made read-only). `meta.json` records the base model, the dataset snapshot, the training
configuration, metrics, the eval report, the creation time, the code version and a SHA-256 of
every other file. Loading verifies those checksums and refuses pickle files: only safetensors.

No torch here: the chat's parent process and the CLI verify adapters without loading a model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import ModelError, NotFoundError
from assistant.settings import DataDir

META = "meta.json"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
REQUIRED = (WEIGHTS, CONFIG)
PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}
VERSION = re.compile(r"^v([0-9]{4,})$")


def version_name(number: int) -> str:
    return f"v{number:04d}"


def version_number(name: str) -> int:
    match = VERSION.match(name)
    if not match:
        raise NotFoundError(f"{name!r} is not an adapter version (expected v0001, v0002, ...)")
    return int(match.group(1))


def normalise_version(text: str) -> str:
    """`3`, `v3` and `v0003` all name v0003."""
    text = text.strip()
    digits = text[1:] if text[:1] in {"v", "V"} else text
    if not (digits.isascii() and digits.isdigit()):
        raise NotFoundError(f"{text!r} is not an adapter version (expected v0001, v0002, ...)")
    return version_name(int(digits))


def version_dir(data_dir: Path, version: str) -> Path:
    """`adapters/<version>` of the data dir, refused (ModelError) when it is a symbolic link or resolves
    outside `adapters/`: promoting or deleting it must not touch anything else."""
    root = DataDir(data_dir).adapters
    directory = root / version
    if directory.is_symlink():
        raise ModelError(f"adapter {version} is a symbolic link ({directory}); refusing to use it")
    if directory.exists() and directory.resolve().parent != root.resolve():
        raise ModelError(f"adapter {version} resolves outside {root}; refusing to use it")
    return directory


def published(data_dir: Path) -> Iterator[Path]:
    root = DataDir(data_dir).adapters
    if root.is_dir():
        yield from sorted(p for p in root.iterdir() if p.is_dir() and VERSION.match(p.name))


def next_version(data_dir: Path, taken: set[str] = frozenset()) -> str:
    numbers = [version_number(p.name) for p in published(data_dir)] + [version_number(v) for v in taken]
    return version_name(max(numbers, default=0) + 1)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checksums(directory: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(directory.iterdir()) if p.is_file() and p.name != META}


def publish(source: Path, data_dir: Path, version: str, meta: dict[str, Any]) -> Path:
    """Copy an adapter saved by peft (`source`) into `adapters/<version>/` with `meta.json`, atomically.

    Only the safetensors weights and the adapter config are taken; anything else peft wrote (a
    README) stays behind. Raises if the version exists: a published version is never replaced.
    """
    check_files(source, verify=False)
    root = DataDir(data_dir).adapters
    root.mkdir(parents=True, exist_ok=True)
    target = root / version
    if target.exists():
        raise ModelError(f"adapter {version} already exists; published versions are never replaced")
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=root))
    try:
        for name in REQUIRED:
            shutil.copyfile(source / name, staging / name)
        meta = {**meta, "version": version, "files": checksums(staging)}
        (staging / META).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for file in staging.iterdir():
            with open(file, "rb") as handle:
                os.fsync(handle.fileno())
            file.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.rename(staging, target)  # fails if another process published the same version meanwhile
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"adapter {directory} has no {META}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"adapter {directory}: {META} is unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise ModelError(f"adapter {directory}: {META} is not a JSON object")
    return meta


def rewrite_meta(directory: Path, meta: dict[str, Any]) -> None:
    """Replace a published version's meta.json (for erasure: its files and their checksums stay as they
    are, and meta.json lists no checksum of its own): a temporary file beside it, renamed over it."""
    handle = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=directory, prefix=f".{META}.", delete=False)
    try:
        with handle:
            handle.write(json.dumps(meta, indent=2, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(handle.name, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(handle.name, directory / META)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise
    _fsync_dir(directory)


def check_files(directory: Path, *, verify: bool = True) -> dict[str, Any] | None:
    """Refuse what must not be loaded: a missing directory or file, pickle files, and (when the
    directory has a meta.json, or `verify` demands one) files that do not match its checksums.

    Returns the meta.json contents, or None for a plain peft adapter directory without one.
    """
    if not directory.is_dir():
        raise ModelError(f"adapter directory not found: {directory}")
    linked = sorted(p.name for p in directory.iterdir() if p.is_symlink())
    if linked:
        raise ModelError(f"adapter {directory.name}: {linked[0]} is a symbolic link; only plain files are loaded")
    pickled = sorted(p.name for p in directory.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if pickled:
        raise ModelError(f"adapter {directory.name} contains a pickle file ({pickled[0]}); only safetensors are loaded")
    for required in REQUIRED:
        if not (directory / required).is_file():
            raise ModelError(f"adapter {directory.name} has no {required}")
    if not verify and not (directory / META).is_file():
        return None
    meta = read_meta(directory)
    expected = meta.get("files")
    if not isinstance(expected, dict) or not all(name in expected for name in REQUIRED):
        raise ModelError(f"adapter {directory.name}: {META} lists no checksums for its weights")
    actual = checksums(directory)
    extra = sorted(set(actual) - set(expected))
    if extra:
        raise ModelError(f"adapter {directory.name} has a file its {META} does not list ({extra[0]})")
    for name, digest in expected.items():
        if actual.get(name) != digest:
            problem = "is missing" if name not in actual else "does not match its checksum"
            raise ModelError(f"adapter {directory.name}: {name} {problem}; refusing to load it")
    return meta


# safetensors dtypes: the numpy type to read them as, and for bfloat16 (which numpy lacks) the
# exponent bits that make a value infinite or NaN when all are set.
_FLOATS = {"F64": ("<f8", None), "F32": ("<f4", None), "F16": ("<f2", None), "BF16": ("<u2", 0x7F80)}
_SIZES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


def check_weights(directory: Path) -> None:
    """Refuse weights a chat would fail on, without a model: a safetensors header that does not parse,
    tensors that do not fit the file, no LoRA weights, a value that is not finite, a LoRA rank that is
    not the one adapter_config.json names. Checked before a promotion and before a chat serves one."""
    import numpy as np

    name = directory.name
    path = directory / WEIGHTS
    try:
        data = np.memmap(path, dtype=np.uint8, mode="r")
    except (OSError, ValueError) as exc:
        raise ModelError(f"adapter {name}: {WEIGHTS} is unreadable ({exc})") from None
    header, start = _safetensors_header(data, name)
    ranks = _ranks(directory)
    lora = 0
    for key, info in header.items():
        if key == "__metadata__":
            continue
        where = f"adapter {name}: {WEIGHTS} tensor {key!r}"
        damaged = f"adapter {name}: {WEIGHTS} is unreadable (tensor {key!r}"
        try:
            dtype, shape, (begin, end) = info["dtype"], [int(n) for n in info["shape"]], info["data_offsets"]
        except (KeyError, TypeError, ValueError):
            raise ModelError(f"{damaged} has a malformed header entry)") from None
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if dtype not in _SIZES or not 0 <= begin <= end <= len(data) - start or end - begin != count * _SIZES[dtype]:
            raise ModelError(f"{damaged} does not fit the file)")
        if dtype in _FLOATS:
            kind, exponent = _FLOATS[dtype]
            values = data[start + begin : start + end].view(kind)
            finite = ((values & exponent) != exponent).all() if exponent else np.isfinite(values).all()
            if not finite:
                raise ModelError(f"{where} holds NaN or infinite values; refusing it")
        parts = key.split(".")
        if "lora_A" in parts or "lora_B" in parts:
            lora += 1
            rank = shape[0] if "lora_A" in parts else (shape[1] if len(shape) > 1 else None)
            if ranks and rank not in ranks:
                raise ModelError(f"{where} has rank {rank}; {CONFIG} says {', '.join(map(str, sorted(ranks)))}")
    if not lora:
        raise ModelError(f"adapter {name}: {WEIGHTS} holds no LoRA weights")


def _safetensors_header(data: Any, name: str) -> tuple[dict[str, Any], int]:
    size = int.from_bytes(bytes(data[:8]), "little") if len(data) >= 8 else -1
    if not 0 < size <= len(data) - 8:
        raise ModelError(f"adapter {name}: {WEIGHTS} is not a safetensors file (no header)")
    try:
        header = json.loads(bytes(data[8 : 8 + size]))
    except (ValueError, RecursionError):
        raise ModelError(f"adapter {name}: {WEIGHTS} has a damaged header") from None
    if not isinstance(header, dict):
        raise ModelError(f"adapter {name}: {WEIGHTS} has a damaged header")
    return header, 8 + size


def _ranks(directory: Path) -> set[int]:
    """The LoRA ranks adapter_config.json allows (`r` and any `rank_pattern`); empty: not stated."""
    try:
        config = json.loads((directory / CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"adapter {directory.name}: {CONFIG} is unreadable ({exc})") from None
    if not isinstance(config, dict) or not isinstance(config.get("r"), int):
        return set()
    pattern = config.get("rank_pattern") or {}
    return {config["r"], *(v for v in pattern.values() if isinstance(v, int))} if isinstance(pattern, dict) else {config["r"]}


def remove(directory: Path) -> None:
    """Delete a version's directory (read-only files included). A directory that is a symbolic link is
    refused; a symbolic link inside is removed, never what it points to (nor is that chmod-ed)."""
    if directory.is_symlink():
        raise ModelError(f"{directory} is a symbolic link; refusing to delete through it")
    if not directory.exists():
        return
    _make_writable(directory)
    trash = directory.with_name(f".{directory.name}.deleted")
    os.rename(directory, trash)
    shutil.rmtree(trash)


def _make_writable(directory: Path) -> None:
    for file in directory.iterdir():
        if not file.is_symlink():
            file.chmod(stat.S_IWUSR | stat.S_IRUSR)


def sweep_staging(data_dir: Path) -> list[str]:
    """Remove what a killed publish or delete left behind (`.vNNNN.*` directories). Call it only
    while holding the retrain lock: publishing happens only under it."""
    root = DataDir(data_dir).adapters
    if not root.is_dir():
        return []
    removed = []
    for path in root.iterdir():
        if path.is_dir() and not path.is_symlink() and re.match(r"^\.v[0-9]{4,}\.", path.name):
            _make_writable(path)
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path.name)
    return removed
