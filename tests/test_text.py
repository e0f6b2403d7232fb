"""Untrusted text made terminal-safe: escape sequences and control characters go, the words stay."""

from __future__ import annotations

import random

import pytest

from assistant.text import integer_ticks, one_line, terminal_safe

ESC = "\x1b"
BEL = "\x07"
ST = ESC + "\\"

REMOVED = [
    pytest.param(f"{ESC}[31mred{ESC}[0m", "red", id="csi-colour"),
    pytest.param(f"{ESC}[1;38;5;196mbold{ESC}[m", "bold", id="csi-256-colour"),
    pytest.param(f"a{ESC}[2Jb{ESC}[H", "ab", id="csi-clear-screen-home"),
    pytest.param(f"x{ESC}[3Ay{ESC}[10;20Hz{ESC}[?25l", "xyz", id="csi-cursor-movement"),
    pytest.param(f"{ESC}]0;pwned title{BEL}after", "after", id="osc-title-bel"),
    pytest.param(f"{ESC}]2;pwned title{ST}after", "after", id="osc-title-st"),
    pytest.param(f"{ESC}]8;;http://evil.example{BEL}link{ESC}]8;;{BEL}", "link", id="osc8-link-bel"),
    pytest.param(f"{ESC}]8;id=1;http://evil.example{ST}link{ESC}]8;;{ST}", "link", id="osc8-link-st"),
    pytest.param(f"{ESC}]52;c;ZXZpbA=={BEL}ok", "ok", id="osc52-clipboard"),
    pytest.param(f"a{ESC}P1$r0m{ST}b", "ab", id="dcs"),
    pytest.param(f"a{ESC}_apc payload{ST}b", "ab", id="apc"),
    pytest.param("\x9b31mred\x9b0m", "red", id="8bit-csi"),
    pytest.param("\x9d0;pwned\x07after", "after", id="8bit-osc-bel"),
    pytest.param("\x9d0;pwned\x9cafter", "after", id="8bit-osc-st"),
    pytest.param(f"lone{ESC}", "lone", id="lone-esc-at-end"),
    pytest.param(f"a{ESC}b", "ab", id="lone-esc-before-letter"),
    pytest.param(f"ding{BEL}dong", "dingdong", id="bel"),
    pytest.param("abc\x08\x08\x08XYZ", "abcXYZ", id="backspace"),
    pytest.param("rm -rf /\rls -l    ", "rm -rf /ls -l    ", id="carriage-return-overwrite"),
    pytest.param("nul\x00byte", "nulbyte", id="nul"),
    pytest.param("del\x7fete", "delete", id="del"),
    pytest.param("form\x0cfeed\x0bvtab", "formfeedvtab", id="form-feed-vertical-tab"),
    pytest.param("\x85next\x9fline", "nextline", id="c1-controls"),
    pytest.param("invoice_\u202efdp.exe", "invoice_fdp.exe", id="bidi-rlo"),
    pytest.param("a\u2066b\u2067c\u2068d\u2069e", "abcde", id="bidi-isolates"),
    pytest.param("x\u202ay\u202bz\u202c\u202dw", "xyzw", id="bidi-embeddings"),
    pytest.param("l\u200er\u200f", "lr", id="bidi-marks"),
]


@pytest.mark.parametrize(("raw", "expected"), REMOVED)
def test_escape_sequences_and_controls_are_removed(raw: str, expected: str) -> None:
    assert terminal_safe(raw) == expected


KEPT = [
    pytest.param("line one\nline two\n", id="newlines"),
    pytest.param("col\tcol\t\tcol", id="tabs"),
    pytest.param("thanks 👍🏽 🎉 👨‍👩‍👧", id="emoji-with-zwj"),
    pytest.param("Crème brûlée, naïve façade, Ærøskøbing, ß", id="accented"),
    pytest.param("你好，世界。サポート 한국어", id="cjk"),
    pytest.param("مرحبا שלום", id="rtl-letters"),
    pytest.param("[bold]x[/bold]", id="rich-markup"),
    pytest.param("[@click=app.quit]x[/]", id="textual-action-markup"),
    pytest.param("[link=http://evil.example]x[/link] `code` **md** <b>html</b>", id="other-markup"),
    pytest.param("price: $5 [50% off] {braces} \\ backslash ~^", id="punctuation"),
    pytest.param("", id="empty"),
]


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_is_kept_exactly(text: str) -> None:
    assert terminal_safe(text) == text


def test_crlf_becomes_a_newline() -> None:
    assert terminal_safe("one\r\ntwo\r\n") == "one\ntwo\n"


def test_escapes_around_kept_text_leave_it_intact() -> None:
    raw = f"{ESC}[31m你好 👍\n{ESC}]0;t{BEL}\t[bold]x[/bold]{ESC}[0m"
    assert terminal_safe(raw) == "你好 👍\n\t[bold]x[/bold]"


def test_hostile_model_reply_keeps_only_its_words() -> None:
    reply = (
        f"Fine {ESC}[31mRED{ESC}[0m {ESC}]0;pwned title{BEL} "
        f"{ESC}]8;;http://evil.example{BEL}link{ESC}]8;;{BEL} [@click=app.quit]x[/] [bold]boom[/bold]"
    )
    safe = terminal_safe(reply)
    assert safe == "Fine RED  link [@click=app.quit]x[/] [bold]boom[/bold]"
    assert "pwned" not in safe and "evil.example" not in safe


# --- one_line ---------------------------------------------------------------------------------


def test_one_line_folds_whitespace() -> None:
    assert one_line("  How do I\n\nreset   my\tthermostat?\r\n ") == "How do I reset my thermostat?"


def test_one_line_is_safe_too() -> None:
    assert one_line(f"{ESC}[31mred{ESC}[0m\n{ESC}]0;t{BEL}title\u202e") == "red title"


def test_one_line_keeps_short_text() -> None:
    assert one_line("short", 10) == "short"
    assert one_line("exactly10!", 10) == "exactly10!"
    assert one_line("no width given " * 20) == ("no width given " * 20).strip()


def test_one_line_truncates_with_an_ellipsis() -> None:
    cut = one_line("How do I reset my thermostat?", 12)
    assert cut == "How do I re…"
    assert len(cut) == 12


def test_one_line_width_counts_visible_characters_only() -> None:
    assert one_line(f"{ESC}[31mabcdef{ESC}[0m", 4) == "abc…"


def test_one_line_truncates_unicode_by_characters() -> None:
    assert one_line("你好世界你好世界", 5) == "你好世界…"


@pytest.mark.parametrize("width", [1, 2, 3, 8, 20])
def test_one_line_never_exceeds_its_width(width: int) -> None:
    assert len(one_line("word " * 50, width)) <= width


# --- property-style ---------------------------------------------------------------------------

ALPHABET = (
    [chr(c) for c in range(0x00, 0x100)]
    + list("\x1b[]()0123456789;?PX^_\\\x07\x9b\x9c\x9d")  # escape-sequence building blocks, weighted up
    + ["\x1b"] * 8
    + list("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
    + list("你好é👍ß")
)
BIDI = set("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def is_unsafe(ch: str) -> bool:
    code = ord(ch)
    return (code < 0x20 and ch not in "\n\t") or 0x7F <= code <= 0x9F or ch in BIDI


def test_no_control_character_survives_random_input() -> None:
    rng = random.Random(20261102)
    for _ in range(3000):
        raw = "".join(rng.choice(ALPHABET) for _ in range(rng.randint(0, 60)))
        safe = terminal_safe(raw)
        assert not [ch for ch in safe if is_unsafe(ch)], repr(raw)
        assert terminal_safe(safe) == safe, repr(raw)
        line = one_line(raw, 30)
        assert not [ch for ch in line if is_unsafe(ch) or ch in "\n\t"], repr(raw)
        assert len(line) <= 30


def test_random_safe_text_is_unchanged() -> None:
    rng = random.Random(7)
    printable = [chr(c) for c in range(0x20, 0x7F)] + list("\n\téàüß你好世界한국👍🎉€«»") + ["\u00a0"]
    for _ in range(2000):
        text = "".join(rng.choice(printable) for _ in range(rng.randint(0, 60)))
        assert terminal_safe(text) == text, repr(text)


@pytest.mark.parametrize(
    ("low", "high", "ticks"),
    [(0, 3, [0, 1, 2, 3]), (1, 7, [1, 3, 5, 7]), (0, 100, [0, 20, 40, 60, 80, 100]), (0, 0, [0, 1]), (0, 46, [0, 10, 20, 30, 40, 50])],
)
def test_plot_axes_tick_whole_numbers(low: int, high: int, ticks: list[int]) -> None:
    """Counts of examples and training steps have no fractions: no "0.75 examples" on an axis."""
    assert integer_ticks(low, high) == ticks
    assert len(ticks) <= 6 and ticks[-1] >= high
