"""Untrusted text (what users type, what models write) made safe to show in a terminal.

Stored text stays exactly as written; it is cleaned where it is shown. Escape sequences (CSI, OSC,
DCS, ...) are removed whole, other control characters dropped, except newline and tab.
"""

from __future__ import annotations

import re

# ESC [ ... final byte; ESC ] ... BEL or ST; ESC P/X/^/_ ... ST; two-byte ESC sequences; 8-bit CSI/OSC.
_ESCAPES = re.compile(
    r"""
    \x1b\[[0-?]*[ -/]*[@-~]                  # CSI
  | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?        # OSC, ended by BEL or ST (or cut off)
  | \x1b[PX^_][^\x1b]*(?:\x1b\\)?             # DCS, SOS, PM, APC
  | \x1b[@-Z\\-_]                             # other two-byte sequences
  | \x9b[0-?]*[ -/]*[@-~]                     # 8-bit CSI
  | \x9d[^\x07\x9c]*(?:\x07|\x9c)?            # 8-bit OSC
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def terminal_safe(text: str) -> str:
    """The text without escape sequences or control characters (newlines and tabs kept)."""
    return _CONTROLS.sub("", _ESCAPES.sub("", text.replace("\r\n", "\n")))


def one_line(text: str, width: int | None = None) -> str:
    """Safe text folded onto one line, cut to `width` characters with an ellipsis."""
    line = " ".join(terminal_safe(text).split())
    if width is not None and len(line) > width:
        return line[: max(0, width - 1)] + "…"
    return line


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 reply`, `2 replies`."""
    return f"{count} {word if count == 1 else (many or word + 's')}"


def is_utf8(text: str) -> bool:
    """Whether `text` encodes as UTF-8: False when it holds a lone surrogate (how Python reads bytes
    that are not UTF-8 from the command line and the environment)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def integer_ticks(low: int, high: int, most: int = 6) -> list[int]:
    """Whole-number axis ticks from `low` to at least `high`, at most `most` of them (counts and steps
    have no fractions: a plot's default 0.75 examples or step 2.5 reads as nonsense)."""
    least = max(1, -(-(high - low) // (most - 1)))
    step = next(m * 10**k for k in range(len(str(least)) + 1) for m in (1, 2, 5) if m * 10**k >= least)
    return list(range(low, max(high, low + 1) + step, step))[:most]
