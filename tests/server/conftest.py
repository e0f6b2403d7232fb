"""A real model server: vLLM's CPU build on 127.0.0.1, started once per session by `assistant serve`.

vLLM lives in its own cached virtualenv, which the test bootstrap installs (`scripts/bootstrap.py
test`; the first fixture use installs it otherwise). The server serves the session's tiny model, the
one the chats, the retrains and the adapters here are built on, under the same name the adapters
record as their base. Tests point their settings at it with `served_settings`; a test that kills the
server restarts it, and every test gets a running one (`model_server`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.adapters.registry import publish
from assistant.settings import Settings, load_settings
from assistant.store import Store

START_TIMEOUT_S = 420.0
KEY_ENV = "TEAM_SERVER_KEY"  # the variable that holds the server's API key in these tests
KEY = "test-key-4f1c9b"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def children(pid: int) -> list[int]:
    """Direct children of `pid` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class ModelServer:
    """`assistant serve` in a subprocess, with the helpers tests need: kill, restart, stop, metrics."""

    def __init__(self, model_dir: Path, data_dir: Path, log_path: Path) -> None:
        self.model_dir = model_dir
        self.data_dir = data_dir
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.vllm: list[int] = []  # vLLM's process (group leader), once it answers
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def served_name(self) -> str:
        return self.model_dir.name

    def command(self) -> list[str]:
        assistant = Path(sys.executable).parent / "assistant"
        return [str(assistant), "serve", "--data-dir", str(self.data_dir), "--model", str(self.model_dir), "--port", str(self.port)]

    def start(self) -> None:
        from assistant.engine.remote import ServerAPI
        from assistant.server.process import serving

        os.environ[KEY_ENV] = KEY  # the chats in these tests send it too
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "ASSISTANT_USER": "server",
            "ASSISTANT_HUB_MODEL": "",
            "ASSISTANT_SERVER_API_KEY_ENV": KEY_ENV,
            # The tests run the server, the chat apps and pytest on the same two cores: with vLLM's
            # OpenMP threads bound to a core, its API server starves and sends replies in bursts
            # at their end, and a test could not stop or break one in the middle.
            "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        }
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, env=env)
        self.starts += 1
        api = ServerAPI(self.url, key=KEY, timeout=5)
        deadline = time.monotonic() + START_TIMEOUT_S
        try:
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"assistant serve exited with {self.process.returncode}:\n{self.log_tail()}")
                if serving(api):
                    self.vllm = self.vllm_pids()
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the model server did not start in {START_TIMEOUT_S:.0f} s:\n{self.log_tail()}")
                time.sleep(0.5)
        finally:
            api.close()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def ensure_running(self) -> None:
        if not self.running():
            self.start()

    def vllm_pids(self) -> list[int]:
        """The vLLM process (a session leader started by `assistant serve`)."""
        return children(self.process.pid) if self.process is not None else []

    def kill(self) -> None:
        """A crash: SIGKILL to `assistant serve` and to vLLM's whole process group."""
        assert self.process is not None
        for pid in self.vllm or self.vllm_pids():
            try:
                os.killpg(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.kill()
        self.process.wait()

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, as systemd sends it: the exit code of `assistant serve`."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def clear_adapters(self) -> None:
        """Unload every adapter: each test starts from the bare server (its versions are its own)."""
        from assistant.engine.remote import ServerAPI

        api = ServerAPI(self.url, key=KEY, timeout=10)
        try:
            for model in api.models():
                if model.parent is not None:
                    api.unload_adapter(model.id)
        finally:
            api.close()

    def metric(self, name: str) -> float:
        from assistant.engine.remote import ServerAPI

        api = ServerAPI(self.url, timeout=5)
        try:
            text = api.metrics()
        finally:
            api.close()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{"))


@pytest.fixture(scope="session")
def server_instance(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    root = tmp_path_factory.mktemp("model-server")
    (root / "data").mkdir()
    server = ModelServer(tiny_model_dir, root / "data", root / "serve.log")
    server.start()
    yield server
    if server.running():
        server.stop()


@pytest.fixture
def model_server(server_instance: ModelServer) -> ModelServer:
    """The session's model server, running (started again if a test stopped or killed it), no adapter loaded."""
    server_instance.ensure_running()
    server_instance.clear_adapters()
    return server_instance


@pytest.fixture(scope="session")
def wide_adapter(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rank-32 adapter for the tiny model, published as v0009: more than the server's maximum rank (16)."""
    from tests.conftest import _train_adapter

    saved = _train_adapter(tiny_model_dir, "Too big for the server.", tmp_path_factory.mktemp("train-wide"), rank=32)
    return publish(saved, tmp_path_factory.mktemp("wide"), "v0009", meta={"base_model": tiny_model_dir.name})


def served_settings(data_dir: Path, server: ModelServer, **overrides: object) -> Settings:
    data_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "user": "ann",
        "hub_model": "",
        "model": str(server.model_dir),
        "server_url": server.url,
        "temperature": 0.0,
        "max_new_tokens": 48,
        "server_timeout": 10.0,
        "server_api_key_env": KEY_ENV,
        **overrides,
    }
    return load_settings(data_dir=data_dir, environ={}, overrides=values).settings


def add_version(settings: Settings, store: Store, version: str, source: Path) -> Path:
    """Publish the adapter in `source` as candidate `version` of this data dir."""
    from assistant.adapters.registry import read_meta

    meta = {k: v for k, v in read_meta(source).items() if k not in {"files", "version"}}
    path = publish(source, settings.data_dir, version, meta)
    store.register_adapter(version, path=str(path), actor="ann", base_model=str(meta.get("base_model")))
    return path
