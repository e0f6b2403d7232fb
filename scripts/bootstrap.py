#!/usr/bin/env python3
"""Install what is missing, then open the chat or run the tests.

    python3 scripts/bootstrap.py chat [assistant chat options]
    python3 scripts/bootstrap.py test [pytest options]
    python3 scripts/bootstrap.py run  [any assistant command]

Needs only Python >= 3.11 and the package registries. Creates `.venv/` in the project once, and
installs the project (editable, with the test extra for `test`) whenever pyproject.toml changed
since the last install; otherwise it starts at once. On a machine without an NVIDIA GPU it prefers
a CPU build of PyTorch (several GB smaller than the default CUDA build). `test` also makes sure vLLM
is installed in its own cached virtualenv (`python -m assistant.server.environment`; about 90 s once),
because the tests run a real model server.

Environment: ASSISTANT_VENV overrides the virtualenv location.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("ASSISTANT_VENV", ROOT / ".venv"))
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
USAGE = "usage: python3 scripts/bootstrap.py {chat|test|run} [arguments...]"


def say(message: str) -> None:
    print(f"[bootstrap] {message}", file=sys.stderr, flush=True)


def venv_python() -> Path:
    if os.name == "nt":
        return VENV / "Scripts" / "python.exe"
    return VENV / "bin" / "python"


def pip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    command = [str(venv_python()), "-m", "pip", "--disable-pip-version-check", *args]
    return subprocess.run(command, check=check, cwd=ROOT)


def ensure_venv() -> None:
    if venv_python().exists():
        return
    say(f"creating a virtualenv in {VENV}")
    try:
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(VENV, ignore_errors=True)
        sys.exit("[bootstrap] error: `python3 -m venv` failed; install your Python's venv module (e.g. python3-venv)")


def has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def torch_installed() -> bool:
    probe = subprocess.run([str(venv_python()), "-c", "import torch"], capture_output=True)
    return probe.returncode == 0


def cpu_torch_from_configured_indexes() -> str | None:
    """A `+cpu` torch build that pip's configured indexes or find-links already offer."""
    listing = subprocess.run(
        [str(venv_python()), "-m", "pip", "--disable-pip-version-check", "index", "versions", "torch"],
        capture_output=True,
        text=True,
    )
    versions = re.findall(r"\b(\d+\.\d+(?:\.\d+)?\+cpu)\b", listing.stdout)
    return f"torch=={versions[0]}" if versions else None


def install_torch() -> None:
    """CUDA machines and macOS/Windows take the default build; Linux without a GPU a CPU build."""
    if torch_installed():
        return
    if platform.system() != "Linux" or has_nvidia_gpu():
        say("installing PyTorch")
        pip("install", "torch>=2.4")
        return
    local = cpu_torch_from_configured_indexes()
    if local:
        say(f"installing the CPU build of PyTorch ({local})")
        pip("install", local)
        return
    say("installing the CPU build of PyTorch")
    attempt = pip("install", "--timeout", "15", "--index-url", PYTORCH_CPU_INDEX, "torch>=2.4", check=False)
    if attempt.returncode != 0:
        say("the PyTorch CPU index is unreachable; installing the default build")
        pip("install", "torch>=2.4")


def install_project(extra: str) -> None:
    """Install the project unless this pyproject.toml was installed already (with `extra`, if given)."""
    stamp = VENV / ".assistant-installed"
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    recorded = stamp.read_text().split() if stamp.exists() else []
    if recorded[:1] == [digest] and (not extra or extra in recorded[1:]):
        return
    install_torch()
    extras = sorted({extra, *recorded[1:]} - {""}) if recorded[:1] == [digest] else [e for e in [extra] if e]
    target = f".[{','.join(extras)}]" if extras else "."
    say(f"installing the project and its dependencies ({target})")
    pip("install", "-e", target)
    # Bytecode for the project's own modules, which an editable install leaves uncompiled (and which
    # PYTHONDONTWRITEBYTECODE keeps uncached): the chat starts noticeably faster with it.
    subprocess.run([str(venv_python()), "-m", "compileall", "-q", str(ROOT / "assistant")], check=False)
    stamp.write_text(" ".join([digest, *extras]) + "\n")


def install_model_server() -> None:
    """vLLM in its own cached virtualenv: the tests start a real model server (CPU build without a GPU)."""
    probe = subprocess.run([str(venv_python()), "-m", "assistant.server.environment"], cwd=ROOT)
    if probe.returncode != 0:
        sys.exit("[bootstrap] error: could not install vLLM for the model server tests (see above)")


def run(command: list[str]) -> int:
    if os.name == "nt":
        return subprocess.call(command, cwd=ROOT)
    os.execv(command[0], command)
    return 0  # not reached


def main(argv: list[str]) -> int:
    if sys.version_info < (3, 11):
        print(f"[bootstrap] error: Python >= 3.11 is needed, this is {platform.python_version()}", file=sys.stderr)
        return 2
    if not argv or argv[0] not in {"chat", "test", "run"}:
        print(USAGE, file=sys.stderr)
        return 2
    what, rest = argv[0], argv[1:]
    ensure_venv()
    if what == "test":
        install_project("test")
        install_model_server()
        return run([str(venv_python()), "-m", "pytest", *rest])
    install_project("")
    assistant = venv_python().parent / ("assistant.exe" if os.name == "nt" else "assistant")
    return run([str(assistant), *(["chat"] if what == "chat" else []), *rest])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
