"""PII scrubbing: untrusted chat text with e-mail addresses, phone numbers, payment card numbers, IBANs
and IP addresses replaced by numbered placeholders (`<EMAIL_1>`, `<PHONE_2>`), stable within one
conversation, plus patterns a deployment configures (`{"ORDER": r"NH-\\d{5}"}` gives `<ORDER_1>`).

Owns the detection rules and their validation (Luhn, ISO 7064 mod-97, `ipaddress`). Pure: standard
library only, no I/O; knows nothing of the store, settings or training. A bad configured pattern is a
ValueError with a one-line message; the caller turns it into a config error.

Detection order, which decides overlaps: the configured patterns (one pass each, in the order
given), e-mail addresses, IPv6 addresses (passes that run only when the text has an "@", or two
colons with hex digits between), then one scan over the places where a number can start, which
tries IBAN, card, IPv4 and phone there in that order. A candidate that fails its check (a digit run
that fails Luhn) is offered to the kinds after it, so it may still be a phone number. Placeholders
are numbered in that order too, per kind and conversation.

Phone numbers, the kind most easily confused with the numbers a support chat is full of:
- `+CC ...`: 8 to 15 digits, groups separated by single spaces, dashes or dots, an optional
  parenthesised group (`+1 (415) 555-0134`, `+44 (0)20 7946 0958`);
- `(area) ...`: a parenthesised area code of 2 to 5 digits, 8 to 15 digits in all;
- otherwise groups separated by one kind of separator used throughout, every group after the first
  2 to 8 digits long: 9 to 15 digits in three groups or more, unless all groups after a short first
  one have 3 digits (`100 000 000` is an amount); 10 to 15 digits in two groups (a ZIP+4 code has
  9); 10 to 12 digits in one run, 15 after the international prefix 00 (longer runs are EANs,
  timestamps, tracking numbers).
No value may sit inside a longer token (`NH-20471`, `#104233123`, `SN0123456789`, `v2.14.3`, a
decimal's fraction), except right after a lower-case word whose space went missing ("Thanks4111
1111 ..."), and no phone number runs on into a time or decimal (`22 11 2026 14:30`).
"""

from __future__ import annotations

import collections
import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence

PII_KINDS = ("EMAIL", "PHONE", "CARD", "IBAN", "IP")

# What the built-in kinds look like; each candidate is checked further by its validator below.
# Possessive quantifiers and separators with one meaning keep every pattern linear on hostile input.
#
# Where a value that is not an e-mail address may start: a token's start (not after an order
# number's "#" or an amount's currency), or right after a lower-case word whose space went missing
# ("Thanks4111 1111 ..."), but not after two hex digits ("deadbeef1234567890" is a hash). An
# upper-case or one-letter prefix makes the digits part of an ID (SN0123456789, v1.2.3.4).
_TOKEN_START = r"(?: (?<![\w#$€£¥+]) | (?<=[a-z][g-z]|[g-z][a-z]) )"

_EMAIL = re.compile(
    r"""
    (?<![\w%+-]) [\w%+-][\w.%+-]*+ @            # local part: a word without an @ fails at once
    (?:[\w-]+\.)+ [^\W\d_]{2,} (?![\w-])         # domain; a sentence's full stop is not the TLD
    """,
    re.VERBOSE,
)
_IPV6 = re.compile(
    r"""
    (?<![\w:]) (?<![0-9A-Fa-f]\.)               # not inside an address or a dotted number
    (?P<label>[A-Za-z][A-Za-z0-9]*+:)?          # "ip:" or "ref:" before it, or its own first group
    (?P<address> (?:[0-9A-Fa-f]{0,4}:){2,7} (?:[0-9]{1,3}(?:\.[0-9]{1,3}){3} | [0-9A-Fa-f]{0,4}) )
    (?![\w:]|\.[0-9])
    """,
    re.VERBOSE,
)
# Every IPv6 address has two colons with only hex digits between them ("::" or ":db8:").
_IPV6_HINT = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IBAN = re.compile(
    r"""
    (?: (?<![\w#$€£¥+]) [A-Za-z]{2}              # country code (glued to a word only in capitals:
      | (?<=[a-z][g-z]|[g-z][a-z]) [A-Z]{2} )    # "Thanks51802..." is no IBAN from "KS")
    [0-9]{2}                                     # check digits
    (?: [A-Za-z0-9]{11,30}                       # written as one run
      | (?:[ ][A-Za-z0-9]{4}){2,8} (?:[ ][A-Za-z0-9]{1,3})? )   # or in groups of four
    (?!\w)
    """,
    re.VERBOSE,
)

# The kinds that start at a digit, "+" or "(", tried in this order at each such place.
_NUMBER_PATTERNS = {
    # Only the groupings printed on cards: free grouping would join a row of unrelated numbers
    # ("104233 2026-11-22 22") into a candidate that passes Luhn one time in ten.
    "CARD": _TOKEN_START
    + r"""
        (?<!\w[.-])                              # not the tail of an order number or a decimal
        (?: [1-9][0-9]{12,18}                    # no card number starts with 0; phones do (00 44 ...)
          | [1-9][0-9]{3} (?P<csep>[ -])[0-9]{4} (?P=csep)[0-9]{4} (?P=csep)[0-9]{1,4} (?:(?P=csep)[0-9]{1,3})?
          | [1-9][0-9]{3} (?P<asep>[ -])[0-9]{6} (?P=asep)[0-9]{4,5} )          # Amex, Diners
        (?!\w)
    """,
    "IP": _TOKEN_START
    + r"""
        (?<![0-9]\.) (?:[0-9]{1,3}\.){3}[0-9]{1,3} (?!\w|\.[0-9])
    """,
    # Group counts and lengths are bounded so that a long row of numbers costs linear time (each
    # of its groups starts a candidate); a bounded national candidate must not stop inside a row
    # that goes on in the same style.
    "PHONE": r"""
        (?: (?<![0-9+]) \+[0-9]{1,15}+ (?: [ .-]?\([0-9]{1,5}\)[ .-]?[0-9]{1,15}+ | [ .-][0-9]{1,15}+ ){0,7}+
          | \([0-9]{2,5}\) [ .-]?[0-9]{1,15}+
            (?: (?P<psep>[ .-])[0-9]{2,8}+ (?:(?P=psep)[0-9]{2,8}+){0,5}+ (?!(?P=psep)[0-9]{2}) )?
          | """
    + _TOKEN_START
    + r"""
            (?<![0-9][.:-]) (?<![^\W0-9][.-])    # not after a decimal, time, date or ID ("NH-"); "Tel:" may lead in
            [0-9]{1,15}+ (?: (?P<sep>[ .-])[0-9]{2,8}+ (?:(?P=sep)[0-9]{2,8}+){0,5}+ (?!(?P=sep)[0-9]{2}) )?
        )
        (?![\w%] | [:-][0-9] | \.[0-9]{1,2}(?![0-9.]))   # not the head of a date, time, decimal or longer token
    """,
}
# One alternation; each kind is a named group, so `lastgroup` says which matched (its inner groups
# close before it does).
_NUMBERS = re.compile("|".join(f"(?P<{kind}>{p})" for kind, p in _NUMBER_PATTERNS.items()), re.VERBOSE)
_NUMBER = {kind: re.compile(p, re.VERBOSE) for kind, p in _NUMBER_PATTERNS.items()}
_LATER = {kind: tuple(_NUMBER_PATTERNS)[i + 1 :] for i, kind in enumerate(_NUMBER_PATTERNS)}
# Where a number value can start: a "+", "(" or digit that begins a run of at least seven number
# characters (the shortest value, 1.1.1.1, has seven), or two digits after two letters (an IBAN's
# check digits: its country code is looked at from there). The pattern starts with a character set,
# so `re` skips to candidates in C (the alternation tried at every position is five times slower),
# and each place found costs a round of Python, so most short numbers must not be one.
_TRIGGER = re.compile(
    r"[0-9+(] (?<![0-9][0-9]) (?: (?=[0-9 .()+-]{6}) | (?<=[A-Za-z]{2}[0-9])(?=[0-9]) )", re.VERBOSE
)

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")  # what a value becomes: <EMAIL_1>, <ORDER_2>
_DIGIT = re.compile(r"[0-9]")
_NOT_DIGIT = re.compile(r"[^0-9]")
_GROUP_END = re.compile(r"[0-9]+\)?")

# A hit: where the value ends (validators may cut a candidate short) and its identity for numbering.
_Hit = tuple[int, str]


# IBAN lengths by country (SWIFT IBAN registry). Only a preference: when several readings of a
# grouped candidate pass mod-97 ("... 2107 y" may, one time in 97), the one of the country's length
# wins; a country missing here or a registry change never makes an IBAN go unscrubbed.
_IBAN_LENGTHS = {
    entry[:2]: int(entry[2:])
    for entry in """
    AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 DK18
    DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 IE22 IL23
    IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 MK19 MN20 MR27
    MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 SC31 SD18 SE24 SI19
    SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30
    """.split()
}


def _iban(m: re.Match[str]) -> _Hit | None:
    # ISO 7064 MOD 97-10 on the IBAN with its first four characters moved to the end, letters
    # read as 10..35. The grouped form may run on into words after it ("... 1332 from"), so the
    # remainder is kept as the groups go by and every group end that checks out is a reading.
    candidate = m.group().upper()
    head = int("".join(str(int(char, 36)) for char in candidate[:4]))  # always six digits
    expected = _IBAN_LENGTHS.get(candidate[:2])
    remainder = 0
    length = 4
    best: _Hit | None = None
    for i in range(4, len(candidate)):
        char = candidate[i]
        if char != " ":
            value = int(char, 36)
            remainder = (remainder * (100 if value > 9 else 10) + value) % 97
            length += 1
        if length > 34:
            break
        at_group_end = i + 1 == len(candidate) or candidate[i + 1] == " "
        if at_group_end and length >= 15 and (remainder * 1_000_000 + head) % 97 == 1:
            best = m.start() + i + 1, candidate[: i + 1].replace(" ", "")
            if length == expected:
                return best
    return best


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


def _canonical_ip(candidate: str) -> str | None:
    # Real addresses have a digit; "dead::beef" or a bare "::" in prose are not worth the risk.
    if not _DIGIT.search(candidate):
        return None
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    return str(address)  # the canonical form, so 2001:db8:0::1 and 2001:DB8::1 are one


def _ipv4(m: re.Match[str]) -> _Hit | None:
    address = _canonical_ip(m.group())
    return (m.end(), address) if address else None


def _phone(m: re.Match[str]) -> _Hit | None:
    start, end = m.span()
    candidate = m.group()
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
    sep = m.group("sep")
    groups = candidate.split(sep) if sep else [candidate]
    if len(groups) == 1:
        # Longer runs are EANs, ISBNs, timestamps and tracking numbers; 00 is the international prefix.
        ok = 10 <= len(digits) <= (15 if digits.startswith("00") else 12)
    elif len(groups) == 2:
        ok = 10 <= len(digits) <= 15  # a ZIP+4 code has 9
    else:
        thousands = len(groups[0]) <= 3 and all(len(group) == 3 for group in groups[1:])
        ok = 9 <= len(digits) <= 15 and not thousands
    return (end, digits) if ok else None


_VALIDATORS: dict[str, Callable[[re.Match[str]], _Hit | None]] = {"CARD": _card, "IP": _ipv4, "PHONE": _phone}


# How far the number patterns look before a trigger (an IBAN's country code and two letters before
# it) and how far a candidate, with what it looks at after itself, can reach after it.
_BEHIND = 4
_AHEAD = 200


def _number_at(text: str, at: int, floor: int) -> tuple[str | None, int, int, str]:
    """The value found from trigger position `at`: (kind, start, end, identity), or, when there is
    none, (None, at, where to look on, "")."""
    # Looked for in a window that starts no earlier than `floor`, the end of the last value
    # replaced, so that value is a boundary ("... 0132.20.121.150.117": a phone number, a full
    # stop, an IP address); the window also keeps each look short on a long text.
    offset = max(floor, at - _BEHIND)
    kind, start, end, value = _value_at(text[offset : at + _AHEAD], at - offset)
    return kind, start + offset, end + offset, value


def _value_at(text: str, at: int) -> tuple[str | None, int, int, str]:
    # An IBAN starts at its country code, two letters before the trigger.
    if at >= 2 and text[at - 2 : at].isalpha() and (m := _IBAN.match(text, at - 2)):
        if hit := _iban(m):
            return "IBAN", at - 2, *hit
    m = _NUMBERS.match(text, at)
    if m is None:
        return None, at, at + 1, ""
    kind = m.lastgroup
    assert kind is not None
    if hit := _VALIDATORS[kind](m):
        return kind, at, *hit
    # A failed candidate may still be a later kind here: a digit run that fails Luhn may be a phone.
    for later in _LATER[kind]:
        if (again := _NUMBER[later].match(text, at)) and (hit := _VALIDATORS[later](again)):
            return later, at, *hit
    # A card-shaped number that fails Luhn is one number (an account, an order): its last groups
    # are not a phone number. Anything else may hide a value further on.
    return None, at, m.end() if kind == "CARD" else at + 1, ""


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


KIND_NAMES = {"EMAIL": "e-mail address", "PHONE": "phone number", "CARD": "card number", "IBAN": "IBAN", "IP": "IP address"}


def mark_placeholders(text: str) -> tuple[str, int]:
    """A model's reply with each placeholder it learnt from scrubbed training data (`<EMAIL_1>`) shown
    as the gap it is, `**[missing: e-mail address]**` (Markdown), so that nobody passes it on to a
    customer as if it were text; and how many there were."""
    found = 0

    def gap(m: re.Match[str]) -> str:
        nonlocal found
        found += 1
        kind = m.group().strip("<>").rsplit("_", 1)[0]
        return f"**[missing: {KIND_NAMES.get(kind, kind.lower().replace('_', ' '))}]**"

    return PLACEHOLDER.sub(gap, text), found


_DOMAIN = re.compile(r"(?:[\w-]+\.)+[^\W\d_]{2,}")
_NOT_ALNUM = re.compile(r"[^0-9A-Za-z]")


class Allowlist:
    """The organisation's own addresses and numbers (`pii_allow`): left in the text, so that the model
    learns "mail no-reply@nimbushome.example", not "mail <EMAIL_1>". An entry is an e-mail address; a
    domain (`nimbushome.example` or `@nimbushome.example`: every address at it or under it); an IP
    address; a phone number, listed in full with its country code (it is then allowed as written
    with or without the country code or with a trunk 0: "+44 (0)20 7946 0958" allows "020 7946 0958",
    never a longer number that merely ends like it); a card number (exactly); an IBAN; or any text a
    configured pattern matches exactly."""

    def __init__(self, entries: Sequence[str] = ()) -> None:
        self._exact: set[str] = set()
        self._emails: set[str] = set()
        self._domains: set[str] = set()
        self._ips: set[str] = set()
        self._numbers: set[str] = set()
        self._codes: set[str] = set()  # IBANs, upper case without spaces
        for entry in entries:
            text = entry.strip()
            if not text:
                raise ValueError("pii_allow has an empty entry")
            self._exact.add(text)
            lower = text.lower()
            if _EMAIL.fullmatch(lower):
                self._emails.add(lower)
            elif _DOMAIN.fullmatch(lower.removeprefix("@")):
                self._domains.add(lower.removeprefix("@"))
            elif address := _canonical_ip(text):
                self._ips.add(address)
            elif text[:2].isalpha():  # an IBAN
                self._codes.add(_NOT_ALNUM.sub("", text).upper())
            elif len(digits := _NOT_DIGIT.sub("", text.replace("(0)", ""))) >= 7:
                self._numbers.add(digits)

    def __bool__(self) -> bool:
        return bool(self._exact)

    def allows(self, kind: str, value: str) -> bool:
        """Whether a value found (as `_placeholder` gets it: an address in lower case, a number's
        digits, an IP's canonical form, an IBAN without spaces, a pattern's match) is allowed."""
        if kind == "EMAIL":
            domain = value.rpartition("@")[2]
            return value in self._emails or any(domain == d or domain.endswith("." + d) for d in self._domains)
        if kind == "IP":
            return value in self._ips
        if kind == "PHONE":
            return any(_same_phone(value, allowed) for allowed in self._numbers)
        if kind == "CARD":
            return value in self._numbers
        if kind == "IBAN":
            return value.upper() in self._codes
        return value in self._exact


def _same_phone(found: str, allowed: str) -> bool:
    """The allowed number (listed in full, with its country code) as written in a text, whole or without
    its country code or with a trunk 0 instead ("+1 (415) 555-0134" as "415 555 0134"); never a longer
    number that merely ends like an allowed one."""
    if found == allowed or found.lstrip("0") == allowed:
        return True
    national = found.lstrip("0")
    return len(national) >= 7 and allowed.endswith(national) and len(allowed) - len(national) <= 3


class Scrubber:
    """The detection rules, compiled once; hands out one ConversationScrubber per conversation."""

    def __init__(self, extra_patterns: Mapping[str, str] | None = None, allow: Sequence[str] = ()) -> None:
        self._custom = tuple(
            (name, _compile_custom(name, pattern)) for name, pattern in (extra_patterns or {}).items()
        )
        self._allow = Allowlist(allow)

    def conversation(self) -> ConversationScrubber:
        """A scrubber with fresh numbering, for the messages of one conversation."""
        return ConversationScrubber(self._custom, self._allow)


class ConversationScrubber:
    """Scrubs the messages of one conversation: the same value gets the same placeholder each time."""

    def __init__(self, custom: tuple[tuple[str, re.Pattern[str]], ...] = (), allow: Allowlist | None = None) -> None:
        self._custom = custom
        self._allow = allow or Allowlist()
        self._numbers: dict[str, dict[str, int]] = {}
        self.counts: collections.Counter[str] = collections.Counter()
        self.allowed: collections.Counter[str] = collections.Counter()  # values left as written

    def scrub(self, text: str) -> str:
        """The text with every value found replaced by its placeholder."""
        if self._custom:
            text = self._scrub_custom(text)
        if "@" in text:
            text = _EMAIL.sub(lambda m: self._placeholder("EMAIL", m.group().lower(), m.group()), text)
        if _IPV6_HINT.search(text):
            text = _IPV6.sub(self._replace_ipv6, text)
        return self._scrub_numbers(text)

    def _replace_ipv6(self, m: re.Match[str]) -> str:
        # "abcd:ef01::1" is one address, "ref:fe80::1" a label and an address, "Thanksf1f5:7453:..."
        # a word and an address with the space missing: the longest reading that parses wins.
        text, label, address = m.string, m.start(), m.start("address")
        starts = [label]
        if address > label:
            word = text[label : address - 1]
            tail = len(word) - len(word.rstrip("0123456789abcdefABCDEF"))
            if 0 < tail <= 4:
                starts.append(address - 1 - tail)
            starts.append(address)
        for start in starts:
            if canonical := _canonical_ip(text[start : m.end()]):
                return text[label:start] + self._placeholder("IP", canonical, text[start : m.end()])
        return m.group()

    def _scrub_numbers(self, text: str) -> str:
        trigger = _TRIGGER.search(text)
        if trigger is None:
            return text  # no digit, "+" or "(": most messages stop here
        pieces: list[str] = []
        done = 0
        while trigger is not None:
            kind, start, end, value = _number_at(text, trigger.start(), done)
            if kind is not None:
                pieces.append(text[done:start])
                pieces.append(self._placeholder(kind, value, text[start:end]))
                done = end
            trigger = _TRIGGER.search(text, end)
        if not pieces:
            return text
        pieces.append(text[done:])
        return "".join(pieces)

    def _scrub_custom(self, text: str) -> str:
        for name, pattern in self._custom:
            if pattern.search(text) is None:
                continue  # most messages: no closure, no guard
            # A later pattern must not rewrite part of an earlier one's placeholder.
            guarded = [m.span() for m in PLACEHOLDER.finditer(text)] if "<" in text else []

            def replace(m: re.Match[str], name: str = name, guarded: list[tuple[int, int]] = guarded) -> str:
                start, end = m.span()
                if any(start < g_end and g_start < end for g_start, g_end in guarded):
                    return m.group()
                return self._placeholder(name, m.group(), m.group())

            text = pattern.sub(replace, text)
        return text

    def _placeholder(self, kind: str, value: str, original: str) -> str:
        """The placeholder for `value` (what identifies it), or the text as written when allowed."""
        if self._allow and self._allow.allows(kind, value):
            self.allowed[kind] += 1
            return original
        numbers = self._numbers.setdefault(kind, {})
        number = numbers.get(value)
        if number is None:
            number = numbers[value] = len(numbers) + 1
        self.counts[kind] += 1
        return f"<{kind}_{number}>"
