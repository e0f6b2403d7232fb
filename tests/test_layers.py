"""Layers that cannot leak (STYLE.md, Habits 4): each module is imported in a fresh interpreter and
the heavy libraries it must not pull in are looked for in sys.modules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ML = ("torch", "transformers")
ML_AND_UI = (*ML, "textual")

CORE = [
    "assistant.settings",
    "assistant.errors",
    "assistant.text",
    "assistant.store",
    "assistant.formats",
    "assistant.engine.base",
    "assistant.engine.resolve",
    "assistant.engine.packaged",  # fetching and converting import torch/transformers only when they run
    "assistant.chat",
    "assistant.references",
    "assistant.curation",
    "assistant.data.builder",
    "assistant.data.snapshot",
    "assistant.data.export",
    "assistant.commands.feedback",
    "assistant.commands.dataset",
    "assistant.erasure",
]

CASES = [pytest.param(module, ML_AND_UI, id=f"{module}-no-ml-no-ui") for module in CORE]
CASES += [
    pytest.param("assistant.tui.app", ML, id="assistant.tui.app-no-ml"),
    pytest.param("assistant.cli", ML_AND_UI, id="assistant.cli-no-ml-no-ui"),
]


def loaded_after_import(module: str, names: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        f"print(json.dumps([n for n in {list(names)!r} if n in sys.modules]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("module", "forbidden"), CASES)
def test_import_does_not_load_heavy_libraries(module: str, forbidden: tuple[str, ...]) -> None:
    assert loaded_after_import(module, forbidden) == []


def test_the_demo_builder_does_not_reach_up_into_training() -> None:
    # demo/ and train/ share the chat templates through a leaf module; neither imports the other.
    loaded = loaded_after_import("assistant.demo.build", ("assistant.train",))
    assert loaded == []


def test_the_4bit_configuration_loads_no_ml_library() -> None:
    # The model server's command line (no torch) takes its 4-bit choice from the same owner as training.
    assert loaded_after_import("assistant.quantization", ML_AND_UI) == []
    assert loaded_after_import("assistant.server.process", ML_AND_UI) == []


def test_the_check_sees_a_loaded_library() -> None:
    # The TUI does load textual: the probe must report it, or the tests above prove nothing.
    assert loaded_after_import("assistant.tui.app", ("textual",)) == ["textual"]


def test_one_module_owns_the_data_dirs_layout() -> None:
    """Where the database, models, adapters, datasets, runs, logs and the retrain lock live is said once,
    by `settings.DataDir`; every other module asks it (a second spelling of a path drifts)."""
    import re

    spelled = re.compile(r'/\s*"(adapters|datasets|runs|models|logs|assistant\.db|retrain\.lock)"')
    offenders = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "assistant").rglob("*.py"))
        if path.name != "settings.py"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if spelled.search(line)
    ]
    assert offenders == []
    from assistant.settings import DataDir, Settings

    settings = Settings(data_dir=Path("/srv/team"), user="ann")
    assert settings.layout == DataDir(Path("/srv/team"))
    assert settings.layout.version("v0003") == Path("/srv/team/adapters/v0003")
    assert settings.db_path == settings.layout.db and settings.runs_dir == settings.layout.runs


def test_the_store_modules_do_not_reach_into_each_other_for_rows() -> None:
    """Records are built from rows in `store/rows.py` alone: no function-local imports between db.py,
    curation.py and training.py (the cycle a design review found)."""
    import ast

    for name in ("db", "curation", "training"):
        tree = ast.parse((ROOT / "assistant" / "store" / f"{name}.py").read_text(encoding="utf-8"))
        local = [
            node.module
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef)
            for node in ast.walk(function)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("assistant.store")
        ]
        assert local == [], (name, local)
    for name in ("curation", "training"):
        source = (ROOT / "assistant" / "store" / f"{name}.py").read_text(encoding="utf-8")
        assert "assistant.store.db" not in source, name
