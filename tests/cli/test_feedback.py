"""`assistant feedback`: list the rated replies, approve, reject, correct, undo (curators only)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from assistant.store import ReviewFilter, Store
from tests.cli.helpers import open_store

HOSTILE = "Fine \x1b[31mRED\x1b[0m \x1b]0;pwned title\x07 and \x9b2J cleared screen"
JSON_KEYS = {
    "id", "conversation_id", "conversation_title", "ups", "downs", "disagreement", "raters", "rated_at", "status",
    "reply", "proposed_correction", "answer", "source", "tags", "reasons", "curator", "model", "adapter",
}
NOT_A_CURATOR = "error: ann is not a curator (curators: zoe; an admin adds names to `curators` in config.toml)"


@pytest.fixture
def utc() -> Iterator[None]:
    """Local time is UTC, so a plain `--since 2026-11-05` means midnight UTC."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = old
    time.tzset()


def _turn(store: Store, user: str, question: str, answer: str) -> int:
    conversation = store.create_conversation(user, "Be brief.")
    q = store.add_message(conversation.id, "user", question)
    return store.add_message(conversation.id, "assistant", answer, parent_id=q.id).id


def _seed(store: Store, clock) -> dict[str, int]:  # noqa: ANN001
    """Ratings on 2 November 2026 (the test clock), one on 10 November.

    up:         thumbs-up, pending, tagged "billing" by a curator.
    down:       thumbs-down with a reason tag and a rater's correction, pending.
    disputed:   thumbs-up from bob, thumbs-down from dan, pending.
    approved:   thumbs-up, approved by cora.
    rejected:   thumbs-down, rejected by cora.
    late:       thumbs-up rated on 10 November, pending.
    """
    ids = {}
    ids["up"] = _turn(store, "ann", "When is my bill due?", "On the 1st of each month.")
    store.rate(ids["up"], "bob", 1)
    ids["down"] = _turn(store, "ann", "Can I pay by card?", "No.")
    store.rate(ids["down"], "bob", -1, reasons=["wrong facts"], correction="Yes: Visa, Mastercard and Amex.")
    ids["disputed"] = _turn(store, "ann", "Do cameras work offline?", "They record to the SD card.")
    store.rate(ids["disputed"], "bob", 1)
    store.rate(ids["disputed"], "dan", -1)
    ids["approved"] = _turn(store, "ann", "How do I reset the hub?", "Hold the button for 10 seconds.")
    store.rate(ids["approved"], "bob", 1)
    store.approve([ids["approved"]], "cora")
    ids["rejected"] = _turn(store, "ann", "I want a refund", "Refund approved, no questions asked!")
    store.rate(ids["rejected"], "bob", -1)
    store.reject([ids["rejected"]], "cora")
    clock.now = datetime(2026, 11, 10, 12, 0, tzinfo=timezone.utc)
    ids["late"] = _turn(store, "ann", "Is shipping free?", "Over $50, yes.")
    store.rate(ids["late"], "eve", 1, reasons=["other"])
    store.set_tags(ids["up"], "yan", ["billing"])
    return ids


@pytest.fixture
def ids(store: Store, clock) -> dict[str, int]:  # noqa: ANN001
    return _seed(store, clock)


def _listed(result) -> list[int]:  # noqa: ANN001
    assert result.code == 0, result.err
    return [int(line.split()[0]) for line in result.out.splitlines()]


def _states(data_dir: Path) -> dict[int, tuple]:
    """Every rated reply's review state, as a fresh connection reads it."""
    store = open_store(data_dir)
    try:
        return {
            item.message.id: (item.status, item.answer, item.source, item.curator)
            for item in store.review_queue(ReviewFilter(status=None))
        }
    finally:
        store.close()


def _decisions(data_dir: Path) -> dict[int, tuple]:
    """As _states, without who decided: an undo records its own actor as the last curator."""
    return {mid: state[:3] for mid, state in _states(data_dir).items()}


# -- list ------------------------------------------------------------------------------------


def test_list_shows_pending_thumbs_down_first_with_marks(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "list", "--data-dir", data_dir, "--user", "ann")

    assert _listed(result) == [ids["down"], ids["disputed"], ids["up"], ids["late"]]
    lines = {int(line.split()[0]): line for line in result.out.splitlines()}
    assert "▲0 ▼1" in lines[ids["down"]] and "✎" in lines[ids["down"]] and "⚠" not in lines[ids["down"]]
    disputed = lines[ids["disputed"]]
    assert "▲1 ▼1" in disputed and "⚠" in disputed and "✎" not in disputed
    assert "⚠" not in lines[ids["up"]] and "✎" not in lines[ids["up"]]
    assert "pending" in lines[ids["up"]] and "When is my bill due?" in lines[ids["up"]]
    assert "On the 1st of each month." in lines[ids["up"]]
    assert result.err_lines == ["4 shown; 4 pending, 1 approved, 1 rejected"]


def test_list_filters(cli, data_dir: Path, ids: dict[str, int], utc: None) -> None:
    def listed(*args: str) -> list[int]:
        return _listed(cli("feedback", "list", *args, "--data-dir", data_dir, "--user", "ann"))

    assert listed("--rating", "up") == [ids["disputed"], ids["up"], ids["late"]]
    assert listed("--rating", "down") == [ids["down"], ids["disputed"]]
    assert listed("--status", "approved") == [ids["approved"]]
    assert listed("--status", "rejected") == [ids["rejected"]]
    everything = listed("--status", "all")
    assert sorted(everything) == sorted(ids.values())
    assert set(everything[:3]) == {ids["down"], ids["disputed"], ids["rejected"]}  # thumbs-down first
    assert listed("--tag", "wrong facts") == [ids["down"]]
    assert listed("--tag", "other") == [ids["late"]]
    assert listed("--tag", "billing") == [ids["up"]]  # a curator's tag
    assert listed("--tag", "tone") == []
    assert listed("--rater", "dan") == [ids["disputed"]]
    assert listed("--rater", "bob", "--rating", "up") == [ids["disputed"], ids["up"]]
    assert listed("--since", "2026-11-05") == [ids["late"]]
    assert listed("--since", "2026-11-10T12:30") == []
    assert listed("--since", "2026-11-01", "--rating", "down") == [ids["down"], ids["disputed"]]
    assert listed("--status", "all", "--since", "2030-01-01") == []


def test_list_since_with_an_explicit_offset(cli, data_dir: Path, ids: dict[str, int]) -> None:
    """A time with an offset means that moment, whatever the local time zone."""
    result = cli("feedback", "list", "--since", "2026-11-10T13:00+01:00", "--data-dir", data_dir, "--user", "ann")
    assert _listed(result) == [ids["late"]]


def test_list_json_one_object_per_line(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "list", "--json", "--status", "all", "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert result.err == ""  # no summary line: stdout and stderr are both for machines here
    rows = {row["id"]: row for row in map(json.loads, result.out.splitlines())}
    assert set(rows) == set(ids.values())
    assert all(set(row) == JSON_KEYS for row in rows.values())
    down = rows[ids["down"]]
    assert (down["ups"], down["downs"], down["disagreement"], down["status"]) == (0, 1, False, "pending")
    assert down["raters"] == ["bob"] and down["tags"] == []  # tags are the curator's; reasons filter with --tag
    assert rows[ids["up"]]["tags"] == ["billing"]
    assert down["reply"] == "No." and down["proposed_correction"] == "Yes: Visa, Mastercard and Amex."
    assert down["conversation_title"] == "Can I pay by card?"
    assert down["rated_at"].startswith("2026-11-02T09:30")
    disputed = rows[ids["disputed"]]
    assert disputed["disagreement"] is True and disputed["raters"] == ["bob", "dan"]
    approved = rows[ids["approved"]]
    assert (approved["status"], approved["answer"], approved["source"], approved["curator"]) == (
        "approved", "Hold the button for 10 seconds.", "reply", "cora",
    )
    assert rows[ids["rejected"]]["status"] == "rejected"
    assert rows[ids["late"]]["rated_at"].startswith("2026-11-10T12:00")


@pytest.mark.parametrize("since", ["yesterday", "2026-13-01", "11/05/2026"])
def test_list_bad_since(cli, data_dir: Path, ids: dict[str, int], since: str) -> None:
    result = cli("feedback", "list", "--since", since, "--data-dir", data_dir, "--user", "ann")

    assert result.code == 4
    assert result.out == ""
    assert result.err_lines == [f"error: --since: {since!r} is not a date such as 2026-11-01 or 2026-11-01T09:30"]


def test_list_never_prints_escape_sequences(cli, data_dir: Path, store: Store) -> None:
    message = _turn(store, "ann", "show me \x1b[2J something", HOSTILE)
    store.rate(message, "bob", -1, correction="ok \x1b]8;;http://evil.example\x07link")

    text = cli("feedback", "list", "--data-dir", data_dir, "--user", "ann")
    as_json = cli("feedback", "list", "--json", "--data-dir", data_dir, "--user", "ann")

    for result in (text, as_json):
        assert result.code == 0, result.err
        assert "cleared screen" in result.out
        assert "\x1b" not in result.out and "\x9b" not in result.out and "\x07" not in result.out, result.out
    [row] = [json.loads(line) for line in as_json.out.splitlines()]
    assert row["reply"] == HOSTILE  # escaped in the JSON text, the exact text once parsed


def test_list_when_nothing_is_rated(cli, data_dir: Path) -> None:
    result = cli("feedback", "list", "--data-dir", data_dir, "--user", "ann")
    assert (result.code, result.out) == (0, "")
    assert result.err_lines == ["0 shown; 0 pending, 0 approved, 0 rejected"]


# -- approve, reject -------------------------------------------------------------------------


def test_approve_ids_uses_the_raters_correction(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "approve", str(ids["up"]), str(ids["down"]), "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert result.out == "approved 2 replies (1 with the rater's correction)\n"
    states = _states(data_dir)
    assert states[ids["up"]] == ("approved", "On the 1st of each month.", "reply", "cora")
    assert states[ids["down"]] == ("approved", "Yes: Visa, Mastercard and Amex.", "correction", "cora")
    assert states[ids["disputed"]][0] == states[ids["late"]][0] == "pending"


def test_approve_all_up_skips_disagreements_and_thumbs_down(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "approve", "--all-up", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert result.out == "approved 2 replies (0 with the rater's correction)\n"
    states = _states(data_dir)
    assert states[ids["up"]][0] == states[ids["late"]][0] == "approved"
    assert states[ids["disputed"]][0] == states[ids["down"]][0] == "pending"
    assert states[ids["rejected"]][0] == "rejected"


def test_approve_all_up_since(cli, data_dir: Path, ids: dict[str, int], utc: None) -> None:
    result = cli("feedback", "approve", "--all-up", "--since", "2026-11-05", "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert result.out.startswith("approved 1 reply")
    states = _states(data_dir)
    assert states[ids["late"]][0] == "approved"
    assert states[ids["up"]][0] == "pending"


def test_approve_all_up_with_nothing_to_approve(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "approve", "--all-up", "--since", "2030-01-01", "--data-dir", data_dir, "--user", "cora")
    assert (result.code, result.out) == (0, "nothing to approve\n")


@pytest.mark.parametrize(
    "args",
    [[], ["--all-up", "ID"], ["ID", "--since", "2026-11-01"]],
    ids=["neither", "both", "since-without-all-up"],
)
def test_approve_usage_errors(cli, data_dir: Path, ids: dict[str, int], args: list[str]) -> None:
    before = _states(data_dir)
    args = [str(ids["up"]) if a == "ID" else a for a in args]

    result = cli("feedback", "approve", *args, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 2
    assert result.out == ""
    assert "Error:" in result.err
    assert _states(data_dir) == before


def test_approve_unknown_id_changes_nothing(cli, data_dir: Path, ids: dict[str, int]) -> None:
    before = _states(data_dir)

    unknown = cli("feedback", "approve", str(ids["up"]), "999", "--data-dir", data_dir, "--user", "cora")

    assert unknown.code == 7
    assert unknown.out == ""
    assert len(unknown.err_lines) == 1 and unknown.err_lines[0].startswith("error: ") and "999" in unknown.err
    assert _states(data_dir) == before  # all or nothing: the known id was not approved either


def test_approve_a_message_with_no_rating(cli, data_dir: Path, store: Store, ids: dict[str, int]) -> None:
    question = store.message(ids["up"]).parent_id

    result = cli("feedback", "approve", str(question), "--data-dir", data_dir, "--user", "cora")

    assert result.code == 7
    assert result.err_lines == [f"error: message {question} has no rating to review"]


def test_approving_a_thumbs_down_reply_without_a_correction_needs_yes(cli, data_dir: Path, ids: dict[str, int]) -> None:
    """It would teach the model the very reply a rater called not helpful."""
    before = _states(data_dir)

    refused = cli("feedback", "approve", str(ids["up"]), str(ids["disputed"]), "--data-dir", data_dir, "--user", "cora")

    assert refused.code == 4
    assert refused.err_lines == [
        f"error: 1 reply {ids['disputed']} rated not helpful, with no correction: approving trains the model on it "
        "as written (add a correction (`assistant feedback correct ID --text ...`) or pass --yes)"
    ]
    assert _states(data_dir) == before  # nothing approved, the thumbs-up reply either

    done = cli("feedback", "approve", str(ids["up"]), str(ids["disputed"]), "--yes", "--data-dir", data_dir, "--user", "cora")
    assert done.code == 0, done.err
    assert _states(data_dir)[ids["disputed"]] == ("approved", "They record to the SD card.", "reply", "cora")


def test_a_reply_approved_before_its_thumbs_down_still_needs_yes(cli, data_dir: Path, store: Store, ids: dict[str, int]) -> None:
    """Approved as written, then rated down: its stored answer is the reply, not a correction."""
    store.approve([ids["up"]], "cora")
    store.rate(ids["up"], "dan", -1)

    refused = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir, "--user", "cora")

    assert refused.code == 4 and "rated not helpful, with no correction" in refused.err


def test_reject(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "reject", str(ids["down"]), str(ids["disputed"]), "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert result.out == "rejected 2 replies\n"
    states = _states(data_dir)
    assert states[ids["down"]][0] == states[ids["disputed"]][0] == "rejected"
    assert states[ids["up"]][0] == "pending"


def test_reject_needs_ids_and_known_ones(cli, data_dir: Path, ids: dict[str, int]) -> None:
    before = _states(data_dir)

    missing = cli("feedback", "reject", "--data-dir", data_dir, "--user", "cora")
    unknown = cli("feedback", "reject", "999", "--data-dir", data_dir, "--user", "cora")

    assert missing.code == 2
    assert unknown.code == 7 and len(unknown.err_lines) == 1
    assert _states(data_dir) == before


# -- correct ---------------------------------------------------------------------------------


def test_correct_with_text_keeps_the_reply(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli(
        "feedback", "correct", str(ids["down"]), "--text", "  Yes, any major card.  ", "--data-dir", data_dir,
        "--user", "cora",
    )

    assert result.code == 0, result.err
    assert result.out == f"saved the corrected answer of reply {ids['down']} (20 characters)\n"
    assert _states(data_dir)[ids["down"]] == ("approved", "Yes, any major card.", "edit", "cora")
    store = open_store(data_dir)
    assert store.message(ids["down"]).content == "No."  # the reply as the model wrote it stays
    store.close()
    listed = cli("feedback", "list", "--status", "approved", "--data-dir", data_dir, "--user", "cora")
    [line] = [line for line in listed.out.splitlines() if int(line.split()[0]) == ids["down"]]
    assert "✎" in line


def test_correct_from_a_file(cli, data_dir: Path, ids: dict[str, int], tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text("Hold the button\nfor ten seconds.\n", encoding="utf-8")

    result = cli("feedback", "correct", str(ids["up"]), "--file", answer, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 0, result.err
    assert _states(data_dir)[ids["up"]] == ("approved", "Hold the button\nfor ten seconds.", "edit", "cora")


@pytest.mark.parametrize("text", ["", "   \n "])
def test_correct_with_empty_text(cli, data_dir: Path, ids: dict[str, int], text: str) -> None:
    before = _states(data_dir)

    result = cli("feedback", "correct", str(ids["down"]), "--text", text, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 4
    assert result.err_lines == ["error: the corrected answer is empty"]
    assert _states(data_dir) == before


def test_correct_with_a_missing_file(cli, data_dir: Path, ids: dict[str, int], tmp_path: Path) -> None:
    before = _states(data_dir)
    missing = tmp_path / "nope.md"

    result = cli("feedback", "correct", str(ids["down"]), "--file", missing, "--data-dir", data_dir, "--user", "cora")

    assert result.code == 4
    assert result.err_lines == [f"error: no such file: {missing}"]
    assert _states(data_dir) == before


def test_correct_needs_text_or_file_and_a_known_reply(cli, data_dir: Path, ids: dict[str, int], tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text("Yes.", encoding="utf-8")

    neither = cli("feedback", "correct", str(ids["down"]), "--data-dir", data_dir, "--user", "cora")
    both = cli("feedback", "correct", str(ids["down"]), "--text", "Yes.", "--file", answer, "--data-dir", data_dir,
               "--user", "cora")
    unknown = cli("feedback", "correct", "999", "--text", "Yes.", "--data-dir", data_dir, "--user", "cora")

    assert neither.code == both.code == 2
    assert unknown.code == 7 and len(unknown.err_lines) == 1


# -- undo ------------------------------------------------------------------------------------


def test_undo_reverts_the_last_action_then_the_one_before(cli, data_dir: Path, ids: dict[str, int]) -> None:
    original = _decisions(data_dir)
    approved = cli("feedback", "approve", str(ids["up"]), str(ids["down"]), "--data-dir", data_dir, "--user", "kim")
    assert approved.code == 0
    after_approve = _decisions(data_dir)
    assert cli("feedback", "reject", str(ids["disputed"]), "--data-dir", data_dir, "--user", "kim").code == 0

    first = cli("feedback", "undo", "--data-dir", data_dir, "--user", "kim")
    assert (first.code, first.out) == (0, "undid the last action on 1 reply\n")
    assert _decisions(data_dir) == after_approve

    second = cli("feedback", "undo", "--data-dir", data_dir, "--user", "kim")
    assert (second.code, second.out) == (0, "undid the last action on 2 replies\n")  # the batch as a whole
    assert _decisions(data_dir) == original

    third = cli("feedback", "undo", "--data-dir", data_dir, "--user", "kim")
    assert (third.code, third.out) == (0, "nothing to undo\n")
    assert _decisions(data_dir) == original


def test_undo_with_nothing_to_undo(cli, data_dir: Path, ids: dict[str, int]) -> None:
    before = _decisions(data_dir)

    result = cli("feedback", "undo", "--data-dir", data_dir, "--user", "zoe")

    assert (result.code, result.out) == (0, "nothing to undo\n")
    assert _decisions(data_dir) == before  # cora's decisions in the seed are not zoe's to undo


def test_undo_restores_a_correction(cli, data_dir: Path, ids: dict[str, int]) -> None:
    before = _decisions(data_dir)
    corrected = cli("feedback", "correct", str(ids["up"]), "--text", "Better.", "--data-dir", data_dir, "--user", "kim")
    assert corrected.code == 0

    result = cli("feedback", "undo", "--data-dir", data_dir, "--user", "kim")

    assert result.code == 0
    assert _decisions(data_dir) == before


# -- curators --------------------------------------------------------------------------------


def _allow_user_override(data_dir: Path) -> None:
    """These tests act as several people through --user: the admin allows that in the data dir's config."""
    (data_dir / "config.toml").write_text("allow_user_override = true\n", encoding="utf-8")


@pytest.fixture
def curators(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("ASSISTANT_CURATORS", "zoe")
    _allow_user_override(data_dir)


def test_only_curators_may_curate(cli, data_dir: Path, ids: dict[str, int], curators: None, tmp_path: Path) -> None:
    answer = tmp_path / "answer.md"
    answer.write_text("Yes.", encoding="utf-8")
    assert cli("feedback", "reject", str(ids["late"]), "--data-dir", data_dir, "--user", "zoe").code == 0
    before = _states(data_dir)
    attempts = {
        "approve": ["approve", str(ids["up"])],
        "approve --all-up": ["approve", "--all-up"],
        "reject": ["reject", str(ids["up"])],
        "correct --text": ["correct", str(ids["up"]), "--text", "Yes."],
        "correct --file": ["correct", str(ids["up"]), "--file", str(answer)],
        "undo": ["undo"],
    }

    for name, args in attempts.items():
        result = cli("feedback", *args, "--data-dir", data_dir, "--user", "ann")
        assert result.code == 9, (name, result)
        assert result.out == "", name
        assert result.err_lines == [NOT_A_CURATOR], name

    assert _states(data_dir) == before
    assert _states(data_dir)[ids["late"]][0] == "rejected"  # zoe's decision, not undone by ann


def test_a_curator_may_curate(cli, data_dir: Path, ids: dict[str, int], curators: None) -> None:
    approved = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir, "--user", "zoe")
    corrected = cli("feedback", "correct", str(ids["down"]), "--text", "Yes.", "--data-dir", data_dir, "--user", "zoe")
    rejected = cli("feedback", "reject", str(ids["disputed"]), "--data-dir", data_dir, "--user", "zoe")
    undone = cli("feedback", "undo", "--data-dir", data_dir, "--user", "zoe")

    assert [r.code for r in (approved, corrected, rejected, undone)] == [0, 0, 0, 0]
    states = _states(data_dir)
    assert states[ids["up"]] == ("approved", "On the 1st of each month.", "reply", "zoe")
    assert states[ids["down"]] == ("approved", "Yes.", "edit", "zoe")
    assert states[ids["disputed"]][0] == "pending"  # the rejection was undone


def test_with_no_curators_everyone_may_curate(cli, data_dir: Path, ids: dict[str, int]) -> None:
    result = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir, "--user", "ann")

    assert result.code == 0, result.err
    assert _states(data_dir)[ids["up"]] == ("approved", "On the 1st of each month.", "reply", "ann")


def test_several_curators_comma_separated(
    cli, data_dir: Path, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("ASSISTANT_CURATORS", "zoe,cora")
    _allow_user_override(data_dir)

    cora = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir, "--user", "cora")
    ann = cli("feedback", "approve", str(ids["late"]), "--data-dir", data_dir, "--user", "ann")

    assert cora.code == 0, cora.err
    assert ann.code == 9
    assert ann.err_lines == [
        "error: ann is not a curator (curators: zoe, cora; an admin adds names to `curators` in config.toml)"
    ]


def test_with_curators_the_curator_is_the_os_login(
    cli, data_dir: Path, ids: dict[str, int], monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    from assistant.settings import login_name

    monkeypatch.setenv("ASSISTANT_CURATORS", f"zoe,{login_name()}")
    before = _states(data_dir)

    by_flag = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir, "--user", "zoe")
    monkeypatch.setenv("ASSISTANT_USER", "zoe")
    by_variable = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir)
    monkeypatch.setenv("ASSISTANT_ALLOW_USER_OVERRIDE", "true")
    allowing_itself = cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir)

    for result in (by_flag, by_variable):
        assert result.code == 9
        assert result.err_lines == [
            f"error: curating acts as the OS login ({login_name()}), not zoe (an admin allows --user and "
            "ASSISTANT_USER here with allow_user_override = true in the data dir's config.toml)"
        ]
    assert allowing_itself.code == 3
    assert allowing_itself.err_lines == [
        "error: env ASSISTANT_ALLOW_USER_OVERRIDE: allow_user_override is read only from the data dir's config.toml"
    ]
    assert _states(data_dir) == before
    monkeypatch.delenv("ASSISTANT_USER")
    monkeypatch.delenv("ASSISTANT_ALLOW_USER_OVERRIDE")
    assert cli("feedback", "approve", str(ids["up"]), "--data-dir", data_dir).code == 0  # the login itself
