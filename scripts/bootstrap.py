#!/usr/bin/env python3
"""Install what is missing, then open the chat or run the tests.

    python3 scripts/bootstrap.py chat [assistant chat options]
    python3 scripts/bootstrap.py test [pytest options]
    python3 scripts/bootstrap.py run  [any assistant command]

Needs only Python >= 3.11 and the package registries. Creates `.venv/` in the project once, and
installs the project (editable) whenever pyproject.toml or its lock changed since the last install;
otherwise it starts at once. The versions come from a committed lock, every package pinned with its
hashes (with the test extra, for both commands): requirements/cpu.txt on Linux without an NVIDIA GPU
(PyTorch's CPU build, several GB smaller than the default CUDA build), requirements/cuda.txt elsewhere
(PyTorch from PyPI). `python3 scripts/lock.py` refreshes them. Where the lock has no PyTorch wheel for
this Python and platform, it says so and installs within pyproject.toml's floors instead (the CPU build
where it can). `test` also makes sure vLLM is installed in its own cached virtualenv
(`python -m assistant.server.environment`; about 90 s once), because the tests run a real model server.

Environment: ASSISTANT_VENV overrides the virtualenv location; ASSISTANT_REQUIRE_LOCK=1 (CI) makes a
lock that does not fit an error instead of falling back to the floors.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
VENV = Path(os.environ.get("ASSISTANT_VENV", ROOT / ".venv"))
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
LOCK_DIR = ROOT / "requirements"
REFRESH = "python3 scripts/lock.py"
TORCH_WHEELS = "# torch wheels: "  # the lock's line listing the tags of the torch wheels it has hashes for
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


def torch_offered() -> list[str]:
    """The torch versions pip's configured indexes and find-links offer, newest first."""
    listing = subprocess.run(
        [str(venv_python()), "-m", "pip", "--disable-pip-version-check", "index", "versions", "torch"],
        capture_output=True,
        text=True,
    )
    found = re.search(r"Available versions: (.*)", listing.stdout)
    return found.group(1).replace(",", " ").split() if found else []


def cpu_torch_from_configured_indexes() -> str | None:
    """The newest `+cpu` torch build that pip's configured indexes or find-links already offer."""
    versions = [version for version in torch_offered() if version.endswith("+cpu")]
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


class Pin(NamedTuple):
    name: str  # normalized: lower case, runs of `-_.` as `-`
    version: str
    marker: str  # "" for every platform
    hashes: tuple[str, ...]  # "sha256:..."


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(text: str) -> list[Pin]:
    """The pins of a lock in requirements/ (pip's format as uv writes it: `name==version ; marker \\ --hash=...`)."""
    pins = []
    for line in text.replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        hashes = tuple(re.findall(r"--hash=(\S+)", line))
        requirement, _, marker = line.split("--hash=")[0].partition(";")
        name, _, version = requirement.strip().partition("==")
        pins.append(Pin(normalize(name), version.strip(), marker.strip(), hashes))
    return pins


def lock_for(system: str, gpu: bool) -> Path:
    """cpu.txt on Linux without an NVIDIA GPU (PyTorch's CPU build), else cuda.txt (PyTorch from PyPI)."""
    return LOCK_DIR / ("cpu.txt" if system == "Linux" and not gpu else "cuda.txt")


def expand_tag(tag: str) -> set[str]:
    """`cp311-cp311-manylinux_2_28_x86_64.manylinux2014_x86_64` -> each single tag it stands for."""
    interpreters, abis, platforms = tag.split("-")
    return {f"{i}-{a}-{p}" for i in interpreters.split(".") for a in abis.split(".") for p in platforms.split(".")}


def lock_fits(text: str, supported: set[str]) -> bool:
    """Whether the lock has a torch wheel this interpreter can install (`supported`: its tags)."""
    for line in text.splitlines():
        if line.startswith(TORCH_WHEELS):
            return any(expand_tag(tag) & supported for tag in line[len(TORCH_WHEELS):].split())
    return False


def supported_tags() -> set[str] | None:
    """The wheel tags the venv's Python installs (None if its pip cannot say)."""
    probe = subprocess.run(
        [str(venv_python()), "-c", "from pip._vendor.packaging.tags import sys_tags; print(*sys_tags(), sep=chr(10))"],
        capture_output=True,
        text=True,
    )
    return set(probe.stdout.split()) if probe.returncode == 0 else None


def choose_lock(lock: Path, supported: set[str] | None) -> tuple[Path | None, str]:
    """The lock to install from, or None and why not (the floors are installed instead)."""
    name = lock.relative_to(ROOT)
    if not lock.exists():
        return None, f"{name} is missing"
    if supported is not None and not lock_fits(lock.read_text(), supported):
        here = f"Python {platform.python_version()}, {platform.system()} {platform.machine()}"
        return None, f"{name} has no PyTorch wheel for this machine ({here}; `{REFRESH}` adds what its indexes offer)"
    return lock, ""


def install_digest(lock: Path) -> str:
    """What an install is of: pyproject.toml and the lock for this machine."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(lock.name.encode())
    digest.update(lock.read_bytes() if lock.exists() else b"")
    return digest.hexdigest()


def install_locked(lock: Path) -> bool:
    """Install the lock's packages exactly, torch first (False if no source offers its torch)."""
    pins = read_lock(lock.read_text())
    sources = []
    torch = [pin for pin in pins if pin.name == "torch"]
    if any("+cpu" in pin.version for pin in torch) and not {pin.version for pin in torch} & set(torch_offered()):
        sources = ["--timeout", "15", "--extra-index-url", PYTORCH_CPU_INDEX]
    with tempfile.TemporaryDirectory() as scratch:
        torch_only = Path(scratch, "torch.txt")
        torch_only.write_text("".join(
            f"torch=={pin.version}{f' ; {pin.marker}' if pin.marker else ''} {' '.join(f'--hash={h}' for h in pin.hashes)}\n"
            for pin in torch
        ))
        say(f"installing PyTorch from {lock.relative_to(ROOT)} ({', '.join(pin.version for pin in torch)})")
        if pip("install", "--require-hashes", "--no-deps", *sources, "-r", str(torch_only), check=False).returncode:
            return False
    say(f"installing the project's dependencies from {lock.relative_to(ROOT)}")
    if pip("install", "--require-hashes", "--no-deps", "-r", str(lock), check=False).returncode:
        sys.exit(f"[bootstrap] error: installing {lock.relative_to(ROOT)} failed (see above)")
    # The build backend (hatchling) comes from the lock too, so the project builds without fetching it.
    say("installing the project")
    if pip("install", "--no-deps", "--no-build-isolation", "-e", ".", check=False).returncode:
        sys.exit("[bootstrap] error: installing the project failed (see above)")
    return True


def install_project(extra: str) -> None:
    """Install the project unless this pyproject.toml and lock were installed already (with `extra`, if given)."""
    stamp = VENV / ".assistant-installed"
    lock = lock_for(platform.system(), has_nvidia_gpu())
    digest = install_digest(lock)
    recorded = stamp.read_text().split() if stamp.exists() else []
    if recorded[:1] == [digest] and (not extra or extra in recorded[1:]):
        return
    chosen, why = choose_lock(lock, supported_tags())
    if chosen is not None and not install_locked(chosen):
        chosen, why = None, f"no package source offers the PyTorch build that {lock.relative_to(ROOT)} pins"
    if chosen is not None:
        extras = ["test"]  # the lock holds the test extra
    elif os.environ.get("ASSISTANT_REQUIRE_LOCK") == "1":
        sys.exit(f"[bootstrap] error: {why}")
    else:
        say(f"{why}; installing within pyproject.toml's floors instead")
        extras = install_floors(extra, recorded[1:] if recorded[:1] == [digest] else [])
    compile_bytecode()
    stamp.write_text(" ".join([digest, *extras]) + "\n")


def install_floors(extra: str, installed: list[str]) -> list[str]:
    """The newest releases within pyproject.toml's floors (as `pip install .` into one's own environment)."""
    install_torch()
    extras = sorted({extra, *installed} - {""})
    target = f".[{','.join(extras)}]" if extras else "."
    say(f"installing the project and its dependencies ({target})")
    pip("install", "-e", target)
    return extras


def compile_bytecode() -> None:
    # Bytecode for the project's own modules, which an editable install leaves uncompiled (and which
    # PYTHONDONTWRITEBYTECODE keeps uncached): the chat starts noticeably faster with it.
    subprocess.run([str(venv_python()), "-m", "compileall", "-q", str(ROOT / "assistant")], check=False)


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
