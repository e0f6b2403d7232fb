"""`assistant eval`: a golden set answered greedily by adapter versions and the base model, on the tiny
model with the two real adapters that answer THERMOSTAT differently; scored (ROUGE-L, must/must_not
phrases), printed side by side or as JSON, stored per version and shown by `models show`; bad files and
unknown versions refused in one line, before any model loads."""

from __future__ import annotations

import json
from contextlib import closing
from pathlib import Path

import pytest

from tests.cli.helpers import open_store, write_jsonl
from tests.conftest import HOSTILE_REPLY, SYSTEM, TAUGHT, THERMOSTAT
from tests.server.conftest import add_version

HOSTILE = "[bold]Is it[/bold] \x1b[31mred\x1b[0m [@click=app.quit]x[/]?"
GOLDEN = [
    {"question": THERMOSTAT, "expected": TAUGHT["v0001"], "must": ["TEN SECONDS"], "must_not": ["call us"]},
    {"question": THERMOSTAT, "must": ["call us"]},
    {"question": HOSTILE, "must_not": [HOSTILE_REPLY]},
]


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")


@pytest.fixture
def lab(data_dir: Path, tiny_model_dir: Path) -> Path:
    """A data dir serving the tiny model with the adapters' system prompt, greedy and short."""
    (data_dir / "config.toml").write_text(
        f'model = "{tiny_model_dir}"\nhub_model = ""\nsystem_prompt = "{SYSTEM}"\n'
        'temperature = 0.7\nmax_new_tokens = 32\nuser = "ann"\n',  # eval decodes greedily whatever the chat's temperature
        encoding="utf-8",
    )
    return data_dir


@pytest.fixture
def versions(lab: Path, adapters: dict[str, Path]) -> Path:
    """v0001 and v0002 published in the lab's data dir, as candidates."""
    from assistant.settings import load_settings

    settings = load_settings(data_dir=lab, environ={}).settings
    with closing(open_store(lab)) as store:
        for version, source in adapters.items():
            add_version(settings, store, version, source)
    return lab


@pytest.fixture
def golden(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "golden.jsonl", *GOLDEN)


def _eval(cli, data_dir: Path, *args: str | Path):  # noqa: ANN001, ANN202
    return cli("eval", *args, "--data-dir", data_dir)


def test_versions_and_the_base_are_scored_side_by_side_and_stored(cli, versions: Path, golden: Path) -> None:  # noqa: ANN001
    result = _eval(cli, versions, golden, "--version", "1", "--version", "v0002", "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["versions"] == ["v0001", "v0002", "base"]  # as named, the base model last
    assert report["file"] == "golden.jsonl" and len(report["sha256"]) == 64 and report["user"] == "ann"
    first, second, hostile = report["questions"]
    assert (first["line"], first["expected"], first["must"], first["must_not"]) == (1, TAUGHT["v0001"], ["TEN SECONDS"], ["call us"])
    taught, other = first["answers"]["v0001"], first["answers"]["v0002"]
    assert taught["answer"] == TAUGHT["v0001"] and taught["rouge_l"] == 1.0
    assert (taught["must_share"], taught["must_not_share"], taught["passed"]) == (1.0, 1.0, True)  # case-insensitive
    assert (taught["must_missing"], taught["must_not_found"]) == ([], [])
    assert other["answer"] == TAUGHT["v0002"] and other["rouge_l"] < 0.5
    assert (other["must_share"], other["must_not_share"], other["passed"]) == (0.0, 0.0, False)
    assert (other["must_missing"], other["must_not_found"]) == (["TEN SECONDS"], ["call us"])
    assert second["answers"]["v0001"]["passed"] is False and second["answers"]["v0002"]["passed"] is True
    assert second["answers"]["v0001"]["rouge_l"] is None  # no expected answer: no ROUGE-L
    assert hostile["question"] == HOSTILE and hostile["answers"]["base"]["passed"] is True
    assert report["totals"]["v0001"] == {
        "questions": 3, "rouge_l": 1.0, "rouge_l_questions": 1, "passed": 2, "phrase_questions": 3, "pass_rate": 2 / 3,
    }
    assert report["totals"]["v0002"]["rouge_l"] < 0.5 and report["totals"]["v0002"]["passed"] == 2
    assert report["totals"]["base"]["rouge_l_questions"] == 1

    with closing(open_store(versions)) as store:
        [v1] = store.golden_evals("v0001")
        [base] = store.golden_evals(None)
    assert (v1.file, v1.sha256, v1.user, v1.batch) == ("golden.jsonl", report["sha256"], "ann", report["batch"])
    assert v1.totals == report["totals"]["v0001"] and base.batch == v1.batch and base.version is None
    assert v1.scores[0] == {"line": 1, "question": THERMOSTAT, "rouge_l": 1.0, "must_share": 1.0,
                            "must_not_share": 1.0, "passed": True}

    shown = cli("models", "show", "v0001", "--data-dir", versions)
    assert shown.code == 0, shown.err
    lines = shown.out.splitlines()
    block = lines.index("Golden-set evals")
    assert lines[block + 1].startswith(f"  golden.jsonl (sha256 {report['sha256'][:12]}) {report['at'][:10]} ")
    assert lines[block + 1].endswith(" by ann: ROUGE-L 1.000 over 1 question, passed 2/3 (67%)")
    as_json = json.loads(cli("models", "show", "v0001", "--json", "--data-dir", versions).out)
    assert [e["totals"] for e in as_json["golden_evals"]] == [report["totals"]["v0001"]]


def test_the_table_has_a_row_per_question_a_column_per_version_and_the_totals(cli, versions: Path, golden: Path) -> None:  # noqa: ANN001
    result = _eval(cli, versions, golden, "--version", "2", "--version", "1")

    assert result.code == 0, result.err
    out = result.out
    lines = out.splitlines()
    assert lines[0].startswith("golden.jsonl: 3 questions, sha256 ")
    header = next(line for line in lines if line.split()[:2] == ["line", "question"])
    assert header.index("v0002") < header.index("v0001") < header.index("base")
    row = next(line for line in lines if line.lstrip().startswith("1 "))
    cells = row.split(THERMOSTAT)[1].split()
    assert cells[:2] == [cells[0], "FAIL"] and float(cells[0]) < 0.5  # v0002
    assert cells[2:4] == ["1.000", "pass"]  # v0001
    assert next(line for line in lines if line.lstrip().startswith("2 ")).split(THERMOSTAT)[1].split()[:2] == ["pass", "FAIL"]
    assert any("mean ROUGE-L" in line and "1.000" in line for line in lines)
    passed = next(line for line in lines if " passed " in f" {line} ")
    assert passed.split("passed")[1].split()[:4] == ["2/3", "(67%)", "2/3", "(67%)"]
    assert "ROUGE-L F1 against the expected answer; pass or FAIL: the must and must_not phrases" in out
    # The question's markup and escape sequences are shown as text, never interpreted.
    assert "[bold]Is it[/bold] red [@click=app.quit]x[/]?" in out and "\x1b" not in out


def test_the_default_is_the_active_version_and_the_base_model(cli, versions: Path, tmp_path: Path) -> None:  # noqa: ANN001
    golden = write_jsonl(tmp_path / "one.jsonl", {"question": THERMOSTAT, "expected": TAUGHT["v0002"]})
    with closing(open_store(versions)) as store:
        store.promote("v0002", actor="ann")

    result = _eval(cli, versions, golden, "--json")
    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["versions"] == ["v0002", "base"] and report["totals"]["v0002"]["rouge_l"] == 1.0

    only_base = json.loads(_eval(cli, versions, golden, "--version", "BASE", "--json").out)
    assert only_base["versions"] == ["base"]
    assert only_base["questions"][0]["answers"]["base"]["answer"] == report["questions"][0]["answers"]["base"]["answer"]


def test_without_an_active_version_the_base_model_answers_alone(cli, lab: Path, tmp_path: Path) -> None:  # noqa: ANN001
    golden = write_jsonl(tmp_path / "one.jsonl", {"question": THERMOSTAT, "must": ["thermostat"]})

    result = _eval(cli, lab, golden, "--json")

    assert result.code == 0, result.err
    report = json.loads(result.out)
    assert report["versions"] == ["base"] and report["totals"]["base"]["rouge_l"] is None
    with closing(open_store(lab)) as store:
        assert [e.version for e in store.golden_evals(None)] == [None]


# -- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], 'FILE holds no questions (one JSON object per line, each with a "question")'),
        (["", "  "], "FILE holds no questions"),
        ([{"question": "Hi?", "must": ["hi"]}, "{not json"], "golden.jsonl line 2: not valid JSON ("),
        (["[1, 2]"], 'golden.jsonl line 1: expected a JSON object with a "question"'),
        ([{"expected": "Yes."}], 'golden.jsonl line 1: no "question"'),
        ([{"question": "  ", "expected": "Yes."}], 'golden.jsonl line 1: "question" must be a non-empty string'),
        ([{"question": "Hi?"}], 'golden.jsonl line 1: nothing to score the answer against: give "expected", "must" or "must_not"'),
        ([{"question": "Hi?", "must": [], "must_not": []}], "golden.jsonl line 1: nothing to score the answer against"),
        ([{"question": "Hi?", "must": "hello"}], 'golden.jsonl line 1: "must" must be a list of non-empty strings'),
        ([{"question": "Hi?", "must_not": ["ok", 3]}], 'golden.jsonl line 1: "must_not" must be a list of non-empty strings'),
        ([{"question": "Hi?", "expected": 42}], 'golden.jsonl line 1: "expected" must be a non-empty string'),
        ([{"question": "Hi?", "answer": "Yes."}], 'golden.jsonl line 1: unknown key "answer"'),
        (['{"question": "hi \\ud800", "must": ["x"]}'], "golden.jsonl line 1: a string holds a lone surrogate"),
    ],
    ids=["empty", "blank lines", "not JSON", "not an object", "no question", "blank question", "nothing to score",
         "empty phrase lists", "must not a list", "must_not not strings", "expected not a string", "unknown key",
         "lone surrogate"],
)
def test_a_bad_golden_set_is_one_line_naming_the_line(cli, data_dir: Path, tmp_path: Path, lines: list, message: str) -> None:  # noqa: ANN001
    file = tmp_path / "golden.jsonl"
    file.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines), encoding="utf-8")

    result = _eval(cli, data_dir, file)

    _assert_one_error(result, 4, message.replace("FILE", str(file)))


def test_a_missing_file_and_a_question_over_the_message_limit(cli, data_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    _assert_one_error(_eval(cli, data_dir, tmp_path / "nowhere.jsonl"), 4, f"no such file: {tmp_path / 'nowhere.jsonl'}")
    _assert_one_error(_eval(cli, data_dir, tmp_path), 4, f"{tmp_path} is a directory, not a file")

    (data_dir / "config.toml").write_text("max_message_chars = 10\n", encoding="utf-8")
    long = write_jsonl(tmp_path / "long.jsonl", {"question": "Where is my parcel?", "must": ["parcel"]})
    _assert_one_error(_eval(cli, data_dir, long), 4,
                      "long.jsonl line 1: the message has 19 characters, more than max_message_chars (10)")


def test_unknown_and_deleted_versions_are_refused_before_a_model_loads(cli, data_dir: Path, tmp_path: Path) -> None:  # noqa: ANN001
    golden = write_jsonl(tmp_path / "golden.jsonl", {"question": "Hi?", "must": ["hi"]})
    with closing(open_store(data_dir)) as store:
        store.register_adapter("v0001", path="adapters/v0001", actor="ann")
        store.delete_adapter("v0001", actor="ann")

    _assert_one_error(_eval(cli, data_dir, golden, "--version", "9"), 7, "no adapter version v0009")
    _assert_one_error(_eval(cli, data_dir, golden, "--version", "latest"), 7, "'latest' is not an adapter version")
    _assert_one_error(_eval(cli, data_dir, golden, "--version", "v1"), 7, "adapter v0001 was deleted: its files are gone")
    with closing(open_store(data_dir)) as store:
        assert store.golden_evals("v0001") == [] and store.golden_evals(None) == []


def _assert_one_error(result, code: int, message: str) -> None:  # noqa: ANN001
    assert result.code == code, result
    assert "Traceback" not in result.err and result.out == ""
    [line] = result.err_lines
    assert line.startswith(f"error: {message}"), line
