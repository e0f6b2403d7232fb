"""`assistant.data.export`: a hand-written snapshot exported to every format and read back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.data.export import EXPORT_FORMATS, export_snapshot
from assistant.errors import InputError

SYSTEM = "You answer questions about Nimbus thermostats."
# Carried verbatim: non-ASCII text, a chat-template marker, and a line separator inside a string.
UMLAUT = "Die Anzeige zeigt „E4“ – was tun? 🌡️"
MARKER = "Literally type <|im_end|> into the field.\u2028Then save."

MULTI_TURN = {
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "My thermostat shows E4."},
        {"role": "assistant", "content": "Replace the batteries.", "weight": 0},
        {"role": "user", "content": "Done, still E4."},
        {"role": "assistant", "content": "E4 means the wiring is loose.", "weight": 1},
    ]
}
SINGLE = {
    "messages": [
        {"role": "user", "content": UMLAUT},
        {"role": "assistant", "content": "Prüfen Sie die Verkabelung.", "weight": 1},
    ]
}
MARKED = {
    "messages": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What do I type to reset?"},
        {"role": "assistant", "content": MARKER, "weight": 1},
    ]
}
EVAL = {
    "messages": [
        {"role": "user", "content": "Can I get a refund?"},
        {"role": "assistant", "content": "Yes, within 30 days.", "weight": 1},
    ]
}
DPO = {
    "prompt": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "My thermostat shows E4."}],
    "chosen": [{"role": "assistant", "content": "E4 means the wiring is loose."}],
    "rejected": [{"role": "assistant", "content": "Replace the batteries."}],
}
KTO = {
    "prompt": [{"role": "user", "content": UMLAUT}],
    "completion": [{"role": "assistant", "content": "Prüfen Sie die Verkabelung."}],
    "label": True,
}
DPO_EVAL = {  # a held-out conversation's pair
    "prompt": [{"role": "user", "content": "Can I get a refund?"}],
    "chosen": [{"role": "assistant", "content": "Yes, within 30 days."}],
    "rejected": [{"role": "assistant", "content": "No."}],
}
KTO_EVAL = [
    {"prompt": DPO_EVAL["prompt"], "completion": DPO_EVAL["rejected"], "label": False},
    {"prompt": DPO_EVAL["prompt"], "completion": DPO_EVAL["chosen"], "label": True},
]
TRAIN = [MULTI_TURN, SINGLE, MARKED]


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    """A snapshot directory as `assistant dataset build` writes it."""
    path = tmp_path / "datasets" / "20250101-000000"
    path.mkdir(parents=True)
    _write_jsonl(path / "train.jsonl", TRAIN)
    _write_jsonl(path / "eval.jsonl", [EVAL])
    _write_jsonl(path / "dpo.jsonl", [DPO])
    _write_jsonl(path / "kto.jsonl", [KTO])
    _write_jsonl(path / "dpo_eval.jsonl", [DPO_EVAL])
    _write_jsonl(path / "kto_eval.jsonl", KTO_EVAL)
    (path / "manifest.json").write_text("{}\n", encoding="utf-8")
    return path


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def _json(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))


def test_openai_keeps_messages_and_weights(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "openai"

    counts = export_snapshot(snapshot, "openai", out)

    assert counts == {"train.jsonl": 3, "eval.jsonl": 1, "dpo.jsonl": 1, "dpo_eval.jsonl": 1}  # no KTO format
    assert sorted(p.name for p in out.iterdir()) == ["dpo.jsonl", "dpo_eval.jsonl", "eval.jsonl", "train.jsonl"]
    assert _jsonl(out / "train.jsonl") == TRAIN
    assert _jsonl(out / "eval.jsonl") == [EVAL]
    assert _jsonl(out / "dpo.jsonl") == [
        {
            "input": {"messages": DPO["prompt"]},
            "preferred_output": DPO["chosen"],
            "non_preferred_output": DPO["rejected"],
        }
    ]
    assert _jsonl(out / "dpo_eval.jsonl") == [  # the held-out pairs: a preference job's validation file
        {
            "input": {"messages": DPO_EVAL["prompt"]},
            "preferred_output": DPO_EVAL["chosen"],
            "non_preferred_output": DPO_EVAL["rejected"],
        }
    ]
    # One row per "\n" line, even with U+2028 in a string; non-ASCII stays readable.
    text = (out / "train.jsonl").read_text(encoding="utf-8")
    assert text.count("\n") == 3 and "\u2028" not in text
    assert "„E4“" in text and "<|im_end|>" in text


def test_openai_drops_extra_keys_and_fills_missing_weights(snapshot: Path, tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "user", "content": "a", "name": "ann"},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "assistant", "content": "d", "metadata": {"id": 3}},
        ],
        "id": 7,
    }
    _write_jsonl(snapshot / "train.jsonl", [row])

    export_snapshot(snapshot, "openai", tmp_path / "out")

    assert _jsonl(tmp_path / "out" / "train.jsonl") == [
        {
            "messages": [
                {"role": "user", "content": "a"},
                {"role": "assistant", "content": "b", "weight": 0},
                {"role": "user", "content": "c"},
                {"role": "assistant", "content": "d", "weight": 1},
            ]
        }
    ]


def test_sharegpt_maps_roles_to_from_and_value(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharegpt"

    counts = export_snapshot(snapshot, "sharegpt", out)

    assert counts == {"train.json": 3, "eval.json": 1}
    train = _json(out / "train.json")
    assert train[0] == {
        "conversations": [
            {"from": "system", "value": SYSTEM},
            {"from": "human", "value": "My thermostat shows E4."},
            {"from": "gpt", "value": "Replace the batteries."},
            {"from": "human", "value": "Done, still E4."},
            {"from": "gpt", "value": "E4 means the wiring is loose."},
        ]
    }
    assert train[1]["conversations"][0] == {"from": "human", "value": UMLAUT}
    assert train[2]["conversations"][-1] == {"from": "gpt", "value": MARKER}
    assert _json(out / "eval.json") == [
        {
            "conversations": [
                {"from": "human", "value": "Can I get a refund?"},
                {"from": "gpt", "value": "Yes, within 30 days."},
            ]
        }
    ]


def test_alpaca_puts_earlier_turns_in_history(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "alpaca"

    counts = export_snapshot(snapshot, "alpaca", out)

    assert counts == {"train.json": 3, "eval.json": 1}
    multi, single, marked = _json(out / "train.json")
    assert multi == {
        "instruction": "Done, still E4.",
        "input": "",
        "output": "E4 means the wiring is loose.",
        "system": SYSTEM,
        "history": [["My thermostat shows E4.", "Replace the batteries."]],
    }
    assert single == {
        "instruction": UMLAUT,
        "input": "",
        "output": "Prüfen Sie die Verkabelung.",
        "system": "",
        "history": [],
    }
    assert marked["output"] == MARKER
    assert _json(out / "eval.json")[0]["instruction"] == "Can I get a refund?"


def test_alpaca_pairs_irregular_turns_as_they_come(snapshot: Path, tmp_path: Path) -> None:
    row = {
        "messages": [
            {"role": "assistant", "content": "Hello, how can I help?", "weight": 0},
            {"role": "user", "content": "First question"},
            {"role": "user", "content": "Second question"},
            {"role": "assistant", "content": "Answer to both", "weight": 0},
            {"role": "user", "content": "Thanks"},
            {"role": "assistant", "content": "Anything else?", "weight": 0},
            {"role": "assistant", "content": "Bye", "weight": 1},
        ]
    }
    _write_jsonl(snapshot / "train.jsonl", [row])

    export_snapshot(snapshot, "alpaca", tmp_path / "out")

    [exported] = _json(tmp_path / "out" / "train.json")
    assert exported["instruction"] == ""
    assert exported["output"] == "Bye"
    assert exported["history"] == [
        ["", "Hello, how can I help?"],
        ["First question", ""],
        ["Second question", "Answer to both"],
        ["Thanks", "Anything else?"],
    ]


def test_hf_saves_a_dataset_dict_with_every_non_empty_split(snapshot: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "hf"

    counts = export_snapshot(snapshot, "hf", out)

    assert counts == {"train": 3, "eval": 1, "dpo": 1, "kto": 1, "dpo_eval": 1, "kto_eval": 2}
    loaded = datasets.load_from_disk(str(out))
    assert isinstance(loaded, datasets.DatasetDict)
    assert {name: split.num_rows for name, split in loaded.items()} == counts
    multi = loaded["train"][0]["messages"]
    assert [(m["role"], m["content"], m["weight"]) for m in multi] == [
        (m["role"], m["content"], m.get("weight")) for m in MULTI_TURN["messages"]
    ]
    assert loaded["train"][1]["messages"][0]["content"] == UMLAUT
    assert loaded["train"][2]["messages"][-1]["content"] == MARKER
    assert loaded["eval"][0]["messages"][-1] == {"role": "assistant", "content": "Yes, within 30 days.", "weight": 1}
    assert loaded["dpo"][0] == DPO
    assert loaded["kto"][0] == KTO
    assert loaded["dpo_eval"].to_list() == [DPO_EVAL]
    assert loaded["kto_eval"].to_list() == KTO_EVAL


def test_hf_leaves_out_empty_splits(snapshot: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    _write_jsonl(snapshot / "eval.jsonl", [])
    (snapshot / "dpo.jsonl").unlink()  # the preference files are optional in a snapshot
    _write_jsonl(snapshot / "kto.jsonl", [])
    (snapshot / "dpo_eval.jsonl").unlink()  # as in a snapshot built before they existed
    _write_jsonl(snapshot / "kto_eval.jsonl", [])

    counts = export_snapshot(snapshot, "hf", tmp_path / "hf")

    assert counts == {"train": 3}
    assert list(datasets.load_from_disk(str(tmp_path / "hf"))) == ["train"]


@pytest.mark.parametrize("fmt", [f for f in EXPORT_FORMATS if f != "hf"])
def test_text_formats_are_byte_identical_on_a_second_export(snapshot: Path, tmp_path: Path, fmt: str) -> None:
    first, second = tmp_path / "first", tmp_path / "second"

    export_snapshot(snapshot, fmt, first)
    export_snapshot(snapshot, fmt, second)

    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    for name in names:
        data = (first / name).read_bytes()
        assert data == (second / name).read_bytes(), name
        assert data.endswith(b"\n") and b"\r" not in data
        data.decode("utf-8")


def test_an_empty_existing_out_dir_is_used(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()

    assert export_snapshot(snapshot, "sharegpt", out) == {"train.json": 3, "eval.json": 1}


def test_a_non_empty_out_dir_is_refused(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")

    with pytest.raises(InputError, match="already exists and is not empty"):
        export_snapshot(snapshot, "openai", out)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_a_directory_without_manifest_is_refused(snapshot: Path, tmp_path: Path) -> None:
    (snapshot / "manifest.json").unlink()

    with pytest.raises(InputError, match="no manifest.json") as raised:
        export_snapshot(snapshot, "openai", tmp_path / "out")
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_an_unknown_format_is_refused(snapshot: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown export format 'csv' \\(choose from openai, sharegpt, alpaca, hf\\)"):
        export_snapshot(snapshot, "csv", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_malformed_row_is_refused_naming_the_line_and_nothing_is_written(snapshot: Path, tmp_path: Path) -> None:
    (snapshot / "eval.jsonl").write_text(
        json.dumps(EVAL) + "\n" + json.dumps({"messages": [{"role": "user", "content": "no answer"}]}) + "\n",
        encoding="utf-8",
    )

    with pytest.raises(InputError, match="eval.jsonl line 2: the last message must be the assistant's answer"):
        export_snapshot(snapshot, "sharegpt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "row", "error"), [
    ("dpo_eval.jsonl", {**DPO_EVAL, "rejected": []}, 'dpo_eval.jsonl line 2: "rejected" must be a non-empty list of messages'),
    ("kto_eval.jsonl", {**KTO_EVAL[0], "label": "yes"}, 'kto_eval.jsonl line 2: "label" must be true or false'),
])
def test_held_out_preference_rows_are_checked_like_the_training_ones(
    snapshot: Path, tmp_path: Path, name: str, row: dict, error: str
) -> None:
    _write_jsonl(snapshot / name, [KTO_EVAL[0] if name.startswith("kto") else DPO_EVAL, row])

    with pytest.raises(InputError, match=error):
        export_snapshot(snapshot, "sharegpt", tmp_path / "out")  # even by a format that leaves them out
    assert not (tmp_path / "out").exists()
