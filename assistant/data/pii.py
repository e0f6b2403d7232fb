"""PII scrubbing: untrusted chat text with e-mail addresses, phone numbers, payment card numbers, IBANs
and IP addresses replaced by numbered placeholders (`<EMAIL_1>`, `<PHONE_2>`), stable within one
conversation, plus patterns a deployment configures (`{"ORDER": r"NH-\\d{5}"}` gives `<ORDER_1>`).

Owns the detection rules and their validation (Luhn, ISO 7064 mod-97, `ipaddress`). Pure: standard
library only, no I/O; knows nothing of the store, settings or training. A bad configured pattern is a
ValueError with a one-line message; the caller turns it into a config error.

Detection order, which decides overlaps: configured patterns (each in its own pass, in the order
given), then one scan for the built-in kinds where, at any position, e-mail beats IBAN beats card
beats IP beats phone. A candidate that fails its check (a digit run that fails Luhn) is offered to
the kinds after it at the same position, so it may still be a phone number.

Phone numbers, the kind most easily confused with the numbers a support chat is full of:
- `+CC ...`: 8 to 15 digits, groups separated by single spaces, dashes or dots, an optional
  parenthesised group (`+1 (415) 555-0134`, `+44 (0)20 7946 0958`);
- `(area) ...`: a parenthesised area code of 2 to 5 digits, 8 to 15 digits in all;
- otherwise 9 to 15 digits in groups separated by one kind of separator used throughout, every group
  after the first at least 2 digits long; 10 digits at least when there are fewer than three groups
  (a ZIP+4 code is 9), and never groups of 3 after a short first one (`100 000 000` is an amount).
None may touch a longer token (`NH-20471`, `#104233123`, `v2.14.3`, a decimal's fraction) or run on
into a time or decimal (`2026-11-22 14:30`).
"""

from __future__ import annotations

import collections
import ipaddress
import re
from collections.abc import Callable, Mapping

PII_KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "IP")

# What the built-in kinds look like; each is checked further by its validator below. Possessive
# quantifiers and single-meaning separators keep every pattern linear on hostile input.
_EMAIL = r"""
    (?<![\w%+-]) [\w%+-][\w.%+-]*+ @            # local part: a word without @ fails at once
    (?:[\w-]+\.)+ [^\W\d_]{2,} (?![\w-])         # domain; a sentence's full stop is not the TLD
"""
_IBAN = r"""
    (?<!\w) [A-Za-z]{2}[0-9]{2}                  # country code, check digits
    (?: [A-Za-z0-9]{11,30}                       # written as one run
      | (?:[ ][A-Za-z0-9]{4}){2,8} (?:[ ][A-Za-z0-9]{1,3})? )   # or in groups of 4
    (?!\w)
"""
# Only the groupings printed on cards: free grouping would join a row of unrelated numbers
# ("104233 2026-11-22 22") into a candidate that passes Luhn one time in ten.
_CARD = r"""
    (?<![\w#]) (?<!\w[.,-])
    (?: [0-9]{13,19}
      | [0-9]{4} (?P<csep>[ -])[0-9]{4} (?P=csep)[0-9]{4} (?P=csep)[0-9]{1,4} (?:(?P=csep)[0-9]{1,3})?   # 4-4-4-4(-3)
      | [0-9]{4} (?P<asep>[ -])[0-9]{6} (?P=asep)[0-9]{4,5} )                                       # 4-6-5, 4-6-4
    (?!\w)
"""
_IP = r"""
    (?<![\w.]) (?:[0-9]{1,3}\.){3}[0-9]{1,3} (?!\w|\.[0-9])
  | (?<![\w.:]) (?:[0-9A-Fa-f]{0,4}:){2,7} (?:[0-9]{1,3}(?:\.[0-9]{1,3}){3} | [0-9A-Fa-f]{0,4})
    (?![\w:]|\.[0-9])
"""
_PHONE = r"""
    (?: (?<![\w+]) \+[0-9]++ (?: [ .-]?\([0-9]{1,5}\)[ .-]?[0-9]++ | [ .-][0-9]++ )*+
      | (?<![\w)]) \([0-9]{2,5}\) [ .-]?[0-9]++ (?: (?P<psep>[ .-])[0-9]{2,}+ (?:(?P=psep)[0-9]{2,}+)*+ )?
      | (?<![\w#$€£¥+]) (?<!\w[.,:/-])           # not the tail of an order number or a decimal
        [0-9]++ (?: (?P<sep>[ .-])[0-9]{2,}+ (?:(?P=sep)[0-9]{2,}+)*+ )?
    )
    (?![\w%]|[.,:/-][0-9])                       # not the head of a date, time, decimal or longer token
"""
_PATTERNS = {"EMAIL": _EMAIL, "IBAN": _IBAN, "CARD": _CARD, "IP": _IP, "PHONE": _PHONE}
_ORDER = tuple(_PATTERNS)


def _combined(kinds: tuple[str, ...]) -> re.Pattern[str]:
    # Each kind is a named group, so `lastgroup` says which one matched (inner groups close earlier).
    return re.compile("|".join(f"(?P<{kind}>{_PATTERNS[kind]})" for kind in kinds), re.VERBOSE)


_SCAN_ALL = _combined(_ORDER)
# Without an @ no e-mail can match, and its branch is the costly one: it reads every word.
_SCAN_NO_EMAIL = _combined(tuple(kind for kind in _ORDER if kind != "EMAIL"))
_SINGLE = {kind: re.compile(pattern, re.VERBOSE) for kind, pattern in _PATTERNS.items()}
_LATER = {kind: _ORDER[i + 1 :] for i, kind in enumerate(_ORDER)}

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
_DIGIT = re.compile(r"[0-9]")
_NOT_DIGIT = re.compile(r"[^0-9]")
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")
_GROUP_END = re.compile(r"[0-9]+\)?")

# A hit: where the value ends (validators may cut a candidate short) and its identity for numbering.
_Hit = tuple[int, str]


def _email(m: re.Match[str]) -> _Hit | None:
    return m.end(), m.group().lower()


def _iban(m: re.Match[str]) -> _Hit | None:
    # The grouped form may run on into words of four letters after it ("... 1332 from"): drop
    # trailing groups until the rest checks out.
    groups = m.group().split(" ")
    for count in range(len(groups), 0, -1):
        value = "".join(groups[:count]).upper()
        if len(value) < 15:
            return None
        if _mod97(value):
            return m.start() + len(" ".join(groups[:count])), value
    return None


def _mod97(iban: str) -> bool:
    if len(iban) > 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    # ISO 7064 MOD 97-10: the first four characters move to the end, letters become 10..35.
    number = "".join(str(int(char, 36)) for char in iban[4:] + iban[:4])
    return int(number) % 97 == 1


def _card(m: re.Match[str]) -> _Hit | None:
    # Grouped digits may run on into what follows ("4111 1111 1111 1111 12/28"): try each group end.
    text, start = m.string, m.start()
    ends = [m.end()] + [i for i in range(m.end() - 1, start, -1) if text[i] in " -"]
    for end in ends:
        digits = _NOT_DIGIT.sub("", text[start:end])
        if len(digits) < 13:
            return None
        if _luhn(digits):
            return end, digits
    return None


def _luhn(digits: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if i % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _ip(m: re.Match[str]) -> _Hit | None:
    candidate = m.group()
    # Real addresses have a digit; "dead::beef" or a bare "::" in prose are not worth the risk.
    if not _DIGIT.search(candidate):
        return None
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return m.end(), str(address)  # the canonical form, so 2001:db8:0::1 and 2001:db8::1 are one


def _phone(m: re.Match[str]) -> _Hit | None:
    text, start, end = m.string, m.start(), m.end()
    candidate = text[start:end]
    digits = _NOT_DIGIT.sub("", candidate)
    if candidate[0] == "+":
        if len(digits) > 15:
            # A number written right after the phone number joins it: cut at a group end.
            for group in reversed(list(_GROUP_END.finditer(candidate))):
                digits = _NOT_DIGIT.sub("", candidate[: group.end()])
                if len(digits) <= 15:
                    end = start + group.end()
                    break
        return (end, digits) if 8 <= len(digits) <= 15 else None
    if candidate[0] == "(":
        return (end, digits) if 8 <= len(digits) <= 15 else None
    if not 9 <= len(digits) <= 15:
        return None
    sep = m.group("sep")
    groups = candidate.split(sep) if sep else [candidate]
    if len(groups) < 3 and len(digits) < 10:
        return None
    if len(groups) >= 3 and len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:]):
        return None
    return end, digits


_VALIDATORS: dict[str, Callable[[re.Match[str]], _Hit | None]] = {
    "EMAIL": _email,
    "IBAN": _iban,
    "CARD": _card,
    "IP": _ip,
    "PHONE": _phone,
}


def _compile_custom(name: str, pattern: str) -> re.Pattern[str]:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(
            f"PII pattern name {name!r} must be upper-case letters, digits and underscores, starting with a letter"
        )
    if not isinstance(pattern, str):
        raise ValueError(f"PII pattern {name}: the regex must be a string, not {type(pattern).__name__}")
    try:
        compiled = re.compile(pattern)
    except re.error as error:
        raise ValueError(f"PII pattern {name}: invalid regex: {' '.join(str(error).split())}") from None
    if compiled.fullmatch(""):
        # It would put a placeholder between every two characters.
        raise ValueError(f"PII pattern {name}: the regex matches the empty string")
    return compiled


class Scrubber:
    """The detection rules, compiled once; hands out one ConversationScrubber per conversation."""

    def __init__(self, extra_patterns: Mapping[str, str] | None = None) -> None:
        self._custom = tuple(
            (name, _compile_custom(name, pattern)) for name, pattern in (extra_patterns or {}).items()
        )

    def conversation(self) -> ConversationScrubber:
        """A scrubber with fresh numbering, for the messages of one conversation."""
        return ConversationScrubber(self._custom)


class ConversationScrubber:
    """Scrubs the messages of one conversation: the same value gets the same placeholder each time."""

    def __init__(self, custom: tuple[tuple[str, re.Pattern[str]], ...] = ()) -> None:
        self._custom = custom
        self._numbers: dict[str, dict[str, int]] = {}
        self.counts: collections.Counter[str] = collections.Counter()

    def scrub(self, text: str) -> str:
        """The text with every value found replaced by its placeholder."""
        if self._custom:
            text = self._scrub_custom(text)
        if "@" in text:
            scan = _SCAN_ALL
        elif _DIGIT.search(text):
            scan = _SCAN_NO_EMAIL
        else:
            return text  # every built-in kind needs a digit or an @: most messages stop here
        pieces: list[str] = []
        done = 0
        position = 0
        while (m := scan.search(text, position)) is not None:
            start = m.start()
            kind = m.lastgroup
            assert kind is not None
            hit = _VALIDATORS[kind](m)
            if hit is None:
                # A failed candidate may still be a later kind at the same place (a digit run that
                # fails Luhn may be a phone number).
                for later in _LATER[kind]:
                    if (again := _SINGLE[later].match(text, start)) and (hit := _VALIDATORS[later](again)):
                        kind = later
                        break
            if hit is None:
                # A card-shaped number that fails Luhn is one number (an account, an order): its
                # last groups are not a phone number. Anything else may hide a value further on.
                position = m.end() if m.lastgroup == "CARD" else start + 1
                continue
            end, value = hit
            pieces.append(text[done:start])
            pieces.append(self._placeholder(kind, value))
            done = position = end
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _scrub_custom(self, text: str) -> str:
        for name, pattern in self._custom:
            # A later pattern must not rewrite part of an earlier one's placeholder.
            guarded = [m.span() for m in _PLACEHOLDER.finditer(text)] if "<" in text else []

            def replace(m: re.Match[str], name: str = name, guarded: list[tuple[int, int]] = guarded) -> str:
                start, end = m.span()
                if any(start < g_end and g_start < end for g_start, g_end in guarded):
                    return m.group()
                return self._placeholder(name, m.group())

            text = pattern.sub(replace, text)
        return text

    def _placeholder(self, kind: str, value: str) -> str:
        numbers = self._numbers.setdefault(kind, {})
        number = numbers.get(value)
        if number is None:
            number = numbers[value] = len(numbers) + 1
        self.counts[kind] += 1
        return f"<{kind}_{number}>"
