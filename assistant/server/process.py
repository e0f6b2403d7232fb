"""`assistant serve`: a vLLM server for the configured base model, run in the foreground.

The server is started for what the chats and retrain use: the base model resolved as everywhere else
(engine/resolve.py; the demo model is built if it is the one), served under the same name that
adapters record as their base; LoRA enabled with runtime loading (VLLM_ALLOW_RUNTIME_LORA_UPDATING),
the largest rank taken from the training settings (`lora_r`, rounded up to a rank vLLM accepts) and
room for the versions a team keeps loaded (active, rollback target, candidate). On CUDA the base is
served the way it was trained, bitsandbytes 4-bit (or bf16: `serve_precision`); without a GPU in fp32
by the CPU build. Arguments after `--` go to vLLM as they are (--tensor-parallel-size, --max-model-len,
...). The API key, if one is configured, reaches vLLM through its environment, never its command line.

Once the server answers, the active adapter version is loaded into it (adapters/serving.py), and the
line that points chats at it is printed. SIGTERM or Ctrl+C stops the server and waits for it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from assistant.errors import ConfigError, ServerError
from assistant.quantization import vllm_options
from assistant.server.environment import SERVER_MODULE
from assistant.settings import Settings

MAX_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the ranks vLLM's --max-lora-rank accepts
MAX_LORAS = 3  # adapters in one batch: the active version, the rollback target, a candidate
MAX_CPU_LORAS = 8  # adapters held in memory
CPU_KV_CACHE_GIB = "1"
READY_TIMEOUT_S = 900.0
STOP_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Plan:
    """How the server is started: its command line, its environment, where it answers."""

    command: list[str]
    env: dict[str, str] = field(repr=False)
    url: str
    served_name: str
    precision: str


def max_lora_rank(lora_r: int) -> int:
    for rank in MAX_LORA_RANKS:
        if rank >= lora_r:
            return rank
    raise ConfigError(f"lora_r = {lora_r} is more than vLLM serves (at most {MAX_LORA_RANKS[-1]})")


def precision(settings: Settings, gpu: bool) -> str:
    """What the server holds the base in: "4-bit NF4 (bitsandbytes)", "bf16" or "fp32"."""
    return vllm_options(settings.serve_precision, gpu)[0]


def url_for(host: str, port: int) -> str:
    """The OpenAI base URL of a server on `host` (IPv6 addresses in brackets)."""
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def public_url(host: str, port: int) -> str:
    """Where other hosts reach a server listening on `host`: this machine's name for every interface."""
    return url_for(socket.gethostname() if host in {"0.0.0.0", "::", ""} else host, port)


def plan(
    settings: Settings,
    python: Path,
    model_path: Path,
    served_name: str,
    *,
    host: str,
    port: int,
    gpu: bool,
    extra: Sequence[str] = (),
    environ: dict[str, str] | None = None,
) -> Plan:
    env = dict(os.environ if environ is None else environ)
    held, precision_flags = vllm_options(settings.serve_precision, gpu)
    command = [
        str(python), "-m", SERVER_MODULE,
        "--model", str(model_path),
        "--served-model-name", served_name,
        "--host", host,
        "--port", str(port),
        "--enable-lora",
        "--max-lora-rank", str(max_lora_rank(settings.lora_r)),
        "--max-loras", str(MAX_LORAS),
        "--max-cpu-loras", str(MAX_CPU_LORAS),
        "--generation-config", "vllm",  # the request's sampling settings, not the model's defaults
        "--seed", "0",
        "--disable-uvicorn-access-log",
    ]
    command += precision_flags  # the base as trained (assistant/quantization.py)
    if not gpu:
        env.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
    command += list(extra)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
    env.setdefault("VLLM_NO_USAGE_STATS", "1")  # nothing leaves the machine
    env.setdefault("DO_NOT_TRACK", "1")
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore::FutureWarning")  # its log is for people
    env.pop("VLLM_API_KEY", None)
    if settings.server_api_key_env:
        key = env.get(settings.server_api_key_env)
        if not key:
            raise ConfigError(
                f"server_api_key_env names {settings.server_api_key_env}, which is not set",
                hint="export it with the key the chats will send, or leave server_api_key_env empty",
            )
        env["VLLM_API_KEY"] = key
    return Plan(command, env, public_url(host, port), served_name, held)


def serving(api) -> bool:  # noqa: ANN001
    """Does the server at `api` (engine.remote.ServerAPI) answer, with a base model listed? (False while it starts.)"""
    try:
        api.health()
        return any(model.parent is None for model in api.models())
    except ServerError:
        return False


class Server:
    """The vLLM process: started in a session of its own, stopped with SIGTERM (then SIGKILL)."""

    def __init__(self, chosen: Plan, *, log: int | None = None) -> None:
        self.plan = chosen
        self.process = subprocess.Popen(
            chosen.command, env=chosen.env, start_new_session=True, stdout=log, stderr=subprocess.STDOUT if log else None
        )

    def wait_ready(self, check: Callable[[], bool], timeout: float = READY_TIMEOUT_S) -> None:
        """Until `check()` is true (the server answers); ServerError if it exits or takes too long."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"the model server exited while starting (exit code {self.process.returncode}; its log says why)")
            if check():
                return
            time.sleep(0.5)
        raise ServerError(f"the model server did not start within {timeout:.0f} s")

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM to the server's process group (vLLM stops its engine processes), SIGKILL if it lingers."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait()
        self._signal(signal.SIGKILL)  # stragglers of the group (engine workers), if any
        return self.process.returncode

    def _signal(self, signum: int) -> None:
        try:
            os.killpg(self.process.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass
