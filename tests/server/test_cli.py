"""The commands with a model server: `ask` answered by it (and exit 13 when it is down), promotions that
load the version into it first (a refused one is not promoted) and unload what is no longer needed,
`doctor` checking it, the API key kept out of everything, and `assistant serve` itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from assistant.engine.remote import ServerAPI
from assistant.store import Store
from tests.cli.conftest import cli, isolated_env  # noqa: F401 - fixtures
from tests.conftest import TAUGHT, THERMOSTAT
from tests.server.conftest import KEY, KEY_ENV, ModelServer, add_version, alive, served_settings


@pytest.fixture
def team(model_server: ModelServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data dir whose config points at the model server (as a team's chat host has it)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text(
        f'server_url = "{model_server.url}"\nserver_api_key_env = "{KEY_ENV}"\nmodel = "{model_server.model_dir}"\n'
        'hub_model = ""\ntemperature = 0.0\nmax_new_tokens = 48\nuser = "ann"\n',
        encoding="utf-8",
    )
    monkeypatch.setenv(KEY_ENV, KEY)
    return data_dir


def loaded(server: ModelServer) -> set[str]:
    api = ServerAPI(server.url, key=KEY)
    try:
        return {m.id for m in api.models() if m.parent is not None}
    finally:
        api.close()


def test_ask_is_answered_by_the_server_with_the_active_version(
    cli, team: Path, model_server: ModelServer, adapters: dict[str, Path]  # noqa: ANN001
) -> None:
    settings = served_settings(team, model_server)
    with closing(Store.open(settings.db_path)) as store:
        add_version(settings, store, "v0002", adapters["v0002"])
        store.promote("v0002", actor="ann")
    result = cli("ask", THERMOSTAT, "--json", "--data-dir", team)
    assert result.code == 0, result.err
    answer = json.loads(result.out)
    assert answer["reply"] == TAUGHT["v0002"] and answer["adapter"] == "v0002" and answer["finish_reason"] == "stop"


def test_ask_with_the_server_down_exits_13_in_one_line_and_keeps_the_question(cli, team: Path, monkeypatch) -> None:  # noqa: ANN001
    from tests.server.conftest import free_port

    monkeypatch.setenv("ASSISTANT_SERVER_URL", f"http://127.0.0.1:{free_port()}/v1")
    result = cli("ask", "Where is my parcel?", "--data-dir", team)
    assert result.code == 13
    assert result.err.startswith("error: cannot reach the model server at 127.0.0.1:") and result.err.count("\n") == 1
    with closing(Store.open(team / "assistant.db")) as store:
        conversation = store.conversations(user="ann")[0]
        question, failed = store.thread(conversation.id)
    assert question.content == "Where is my parcel?"
    assert failed.finish_reason == "error" and failed.content == "" and "cannot reach" in failed.error


def test_ask_refuses_a_question_too_long_for_the_server_and_stores_nothing(cli, team: Path, model_server: ModelServer) -> None:  # noqa: ANN001
    requests = model_server.metric("vllm:request_success_total")
    result = cli("ask", "Here is my router log: " + "zebra quartz 1234 " * 1500, "--data-dir", team)
    assert result.code == 4
    assert result.err.startswith("error: the message is too long for the model on the server (")
    assert result.err.count("\n") == 1
    with closing(Store.open(team / "assistant.db")) as store:
        assert store.conversations(include_archived=True) == []
    assert model_server.metric("vllm:request_success_total") == requests


def test_promote_loads_into_the_server_refuses_what_it_refuses_and_unloads_older_versions(
    cli, team: Path, model_server: ModelServer, adapters: dict[str, Path], wide_adapter: Path  # noqa: ANN001
) -> None:
    settings = served_settings(team, model_server)
    with closing(Store.open(settings.db_path)) as store:
        for version, source in (("v0001", adapters["v0001"]), ("v0002", adapters["v0002"]),
                                ("v0003", wide_adapter), ("v0004", adapters["v0001"])):
            add_version(settings, store, version, source)
    for version in ("v0001", "v0002"):
        result = cli("models", "promote", version, "--data-dir", team)
        assert result.code == 0 and f"{version} is active" in result.out, result.err
        assert version in loaded(model_server)

    refused = cli("models", "promote", "v0003", "--data-dir", team)
    assert refused.code == 5
    assert "refused adapter v0003: LoRA rank 32 is greater than max_lora_rank 16" in refused.err
    with closing(Store.open(settings.db_path)) as store:
        assert store.active_adapter().version == "v0002"  # the version serving before keeps serving

    # v0004 active: the server keeps it, v0002 (where a rollback goes) and no older version.
    assert cli("models", "promote", "v0004", "--data-dir", team).code == 0
    held = loaded(model_server)
    assert {"v0004", "v0002"} <= held and "v0001" not in held
    rolled = cli("models", "rollback", "--data-dir", team)
    assert rolled.code == 0 and "v0002 is active" in rolled.out and rolled.err == ""


def test_doctor_checks_the_server_and_never_shows_the_key(cli, team: Path, model_server: ModelServer) -> None:  # noqa: ANN001
    result = cli("doctor", "--data-dir", team)
    assert result.code == 0, result.err
    section = result.out.split("\nModel server\n", 1)[1].split("\n\n", 1)[0]
    assert f"server_url          {model_server.url}" in section
    assert f"API key             from ${KEY_ENV}: set (not shown)" in section
    assert "reachable           yes (vLLM 0.32.0)" in section
    assert f"base model          {model_server.served_name}" in section
    assert "LoRA                enabled (3 adapters per batch)" in section
    assert "runtime loading     allowed" in section
    assert KEY not in result.out + result.err


def test_the_api_key_reaches_no_file_in_the_data_dir(cli, team: Path) -> None:  # noqa: ANN001
    assert cli("ask", THERMOSTAT, "--data-dir", team, "-v").code == 0
    assert cli("doctor", "--data-dir", team).code == 0
    for path in team.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_eight_chats_at_once_each_get_their_whole_reply_stored_and_none_mixed_up(
    team: Path, model_server: ModelServer, adapters: dict[str, Path]
) -> None:
    """Eight `assistant ask` processes at once on one server, half on each of two adapters (so the
    server batches two LoRAs together): every reply whole, from its own adapter, in its own conversation."""
    settings = served_settings(team, model_server)
    with closing(Store.open(settings.db_path)) as store:
        dirs = {v: add_version(settings, store, v, adapters[v]) for v in ("v0001", "v0002")}
    assistant = Path(sys.executable).parent / "assistant"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    clients = []
    for number in range(8):
        version = ("v0001", "v0002")[number % 2]
        command = [str(assistant), "ask", THERMOSTAT, "--json", "--data-dir", str(team),
                   "--user", f"agent{number}", "--adapter", str(dirs[version])]
        clients.append((number, version, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)))
    answers = {}
    for number, version, process in clients:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
        answers[number] = (version, json.loads(out))
    with closing(Store.open(settings.db_path)) as store:
        for number, (version, answer) in answers.items():
            assert answer["adapter"] == version and answer["reply"] == TAUGHT[version]
            assert answer["finish_reason"] == "stop"
            conversation = store.conversation(answer["conversation_id"])
            assert conversation.user == f"agent{number}"
            question, reply = store.thread(conversation.id)
            assert question.content == THERMOSTAT and reply.id == answer["message_id"]
            assert reply.content == TAUGHT[version] and reply.adapter == version
        assert len({a["conversation_id"] for _, a in answers.values()}) == 8


def test_serve_loads_the_active_version_at_start_and_stops_cleanly_on_sigterm(
    model_server: ModelServer, adapters: dict[str, Path]
) -> None:
    settings = served_settings(model_server.data_dir, model_server)
    with closing(Store.open(settings.db_path)) as store:
        if store.active_adapter() is None:
            add_version(settings, store, "v0001", adapters["v0001"])
            store.promote("v0001", actor="ann")
    vllm = model_server.vllm_pids()
    assert vllm and all(alive(pid) for pid in vllm)
    assert model_server.stop() == 0  # systemctl stop: SIGTERM, a clean exit
    assert not any(alive(pid) for pid in vllm)
    assert "Stopping the model server" in model_server.log_tail(400)

    model_server.start()
    deadline = time.monotonic() + 30
    while "Loaded the active adapter" not in model_server.log_tail(400):
        assert time.monotonic() < deadline, model_server.log_tail()
        time.sleep(0.2)
    assert "v0001" in loaded(model_server)  # preloaded: the first chat does not wait for it
    log = model_server.log_tail(400)
    assert f"Point chats at it:  ASSISTANT_SERVER_URL={model_server.url} assistant chat" in log
    assert "Loaded the active adapter v0001." in log
    assert KEY not in log


def test_retrain_keeps_a_version_the_server_refuses_as_a_candidate(
    cli, team: Path, model_server: ModelServer  # noqa: ANN001
) -> None:
    """Trained at rank 32, over the server's maximum: published, not promoted, and the base model keeps serving."""
    from tests.train.conftest import TRAIN_CONFIG, curate

    config = (team / "config.toml").read_text(encoding="utf-8")
    training = "\n".join(line for line in TRAIN_CONFIG.splitlines() if not line.startswith(("model", "user", "hub_model", "temperature", "max_new_tokens")))
    (team / "config.toml").write_text(config + training + "\nlora_r = 32\nlora_alpha = 64\n", encoding="utf-8")
    with closing(Store.open(team / "assistant.db")) as store:
        curate(store)
    result = cli("retrain", "--data-dir", team)
    assert result.code == 12, result.err
    assert "not served: the model server refused adapter v0001: LoRA rank 32 is greater than max_lora_rank 16" in result.out + result.err
    with closing(Store.open(team / "assistant.db")) as store:
        assert store.active_adapter() is None
        assert store.adapter("v0001").status == "candidate"
    assert "v0001" not in loaded(model_server)
