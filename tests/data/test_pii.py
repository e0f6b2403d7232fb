"""PII scrubbing: seeded canaries of every kind disappear into the right placeholder wherever they sit
in a sentence, numbering is stable within a conversation and restarts with the next, invalid values
and the numbers a support chat is full of stay as written, configured patterns come first."""

from __future__ import annotations

import ast
import ipaddress
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from assistant.data import pii
from assistant.data.pii import PII_KINDS, Scrubber

CANARIES_PER_KIND = 250

# Where a value sits: start, middle, end, against brackets, commas, full stops, quotes, newlines,
# a label without a space. Deliberately full of the other numbers a chat has, which must survive.
TEMPLATES = [
    "{}",
    "{} is the one on my account.",
    "Hi, you can reach me at {} if anything changes.",
    "My details (in case you need them): {}.",
    "Please update it to {}, thanks!",
    'I typed "{}" into the form and it said invalid',
    "the old one was '{}' but that changed in 2026-11-22",
    "Sent from my phone\n{}\nThanks",
    "Is it ({})?",
    "ref:{}",
    "Order NH-20471 for $1,299.00 — contact {}; firmware 3.2.1 on the T-200",
    "Thanks!\n\n{}",
    "[{}] was on the invoice #104233 from 22.11.2026 at 14:30",
    "{}\tthat is all",
    "Why does {} show up twice?",
]


def placeholders(text: str) -> list[str]:
    return re.findall(r"<[A-Z][A-Z0-9_]*_[0-9]+>", text)


def digits(text: str) -> str:
    return re.sub(r"[^0-9]", "", text)


def luhn_ok(number: str) -> bool:
    total = 0
    for i, char in enumerate(reversed(number)):
        value = int(char) * (2 if i % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def with_luhn_digit(body: str) -> str:
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


def iban_check_digits(country: str, bban: str) -> str:
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{98 - int(numeric) % 97:02d}"


# --- canary generators: realistic values, seeded -------------------------------------------------


def number(rng: random.Random, length: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(length))


def email(rng: random.Random) -> str:
    first = rng.choice(["john", "anna", "li", "maría", "o.neil", "Jöran", "SAM", "x"])
    last = rng.choice(["doe", "smith", "van-der-berg", "K", "wang"])
    local = rng.choice(
        [
            f"{first}.{last}",
            f"{first}_{last}{rng.randint(1, 99)}",
            f"{first}+support",
            f"{first}{rng.randint(1970, 2010)}",
            f"{last}.{first}.{rng.randint(1, 9)}",
        ]
    )
    domain = rng.choice(
        ["example.com", "mail.example.co.uk", "my-shop.de", "sub.domain.io", "EXAMPLE.ORG", "exämple.se", "x.museum"]
    )
    return f"{local}@{domain}"


def phone(rng: random.Random) -> str:
    n = lambda k: number(rng, k)  # noqa: E731
    area = str(rng.randint(201, 989))
    return rng.choice(
        [
            f"+1 {area}-{n(3)}-{n(4)}",
            f"+1 ({area}) {n(3)}-{n(4)}",
            f"({area}) {n(3)}-{n(4)}",
            f"{area}.{n(3)}.{n(4)}",
            f"{area}-{n(3)}-{n(4)}",
            f"1-800-{n(3)}-{n(4)}",
            f"+1{area}{n(7)}",
            f"{area}{n(7)}",
            f"0044 20 {n(4)} {n(4)}",
            f"0049{n(10)}",
            f"+44 20 {n(4)} {n(4)}",
            f"020 {n(4)} {n(4)}",
            f"+44 (0)20 {n(4)} {n(4)}",
            f"07{n(3)} {n(6)}",
            f"+49 30 {n(rng.randint(7, 9))}",
            f"030 {n(8)}",
            f"+33 {rng.randint(1, 9)} {n(2)} {n(2)} {n(2)} {n(2)}",
            f"0{rng.randint(1, 9)} {n(2)} {n(2)} {n(2)} {n(2)}",
            f"+61 2 {n(4)} {n(4)}",
            f"(02) {n(4)} {n(4)}",
            f"04{n(2)} {n(3)} {n(3)}",
            f"+34 9{n(2)} {n(3)} {n(3)}",
            f"+31 6-{n(8)}",
            f"+91 9{n(4)} {n(5)}",
            f"+81 3-{n(4)}-{n(4)}",
            f"+7 495 {n(3)}-{n(2)}-{n(2)}",
        ]
    )


def card(rng: random.Random) -> str:
    brand = rng.choice(["visa", "mastercard", "mastercard2", "amex"])
    if brand == "amex":
        full = with_luhn_digit(rng.choice(["34", "37"]) + number(rng, 12))
        style = rng.choice(["plain", "amex-space", "amex-dash"])
        if style == "plain":
            return full
        sep = " " if style == "amex-space" else "-"
        return sep.join([full[:4], full[4:10], full[10:]])
    prefix = {"visa": "4", "mastercard": str(rng.randint(51, 55)), "mastercard2": str(rng.randint(2221, 2720))}[brand]
    full = with_luhn_digit(prefix + number(rng, 15 - len(prefix)))
    sep = rng.choice(["", " ", "-"])
    return sep.join(full[i : i + 4] for i in range(0, 16, 4))


# Country and BBAN shape (n: digit, a: upper-case letter, c: either), from the IBAN registry.
IBAN_FORMATS = [
    ("DE", "n" * 18),
    ("GB", "aaaa" + "n" * 14),
    ("FR", "n" * 10 + "c" * 11 + "nn"),
    ("ES", "n" * 20),
    ("NL", "aaaa" + "n" * 10),
    ("IT", "a" + "n" * 10 + "c" * 12),
    ("BE", "n" * 12),
    ("CH", "n" * 5 + "c" * 12),
    ("AT", "n" * 16),
    ("PL", "n" * 24),
    ("NO", "n" * 11),
    ("MT", "aaaa" + "n" * 5 + "c" * 18),
]


def iban(rng: random.Random) -> str:
    country, shape = rng.choice(IBAN_FORMATS)
    pools = {"n": "0123456789", "a": "ABCDEFGHIJKLMNOPQRSTUVWXYZ", "c": "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
    bban = "".join(rng.choice(pools[kind]) for kind in shape)
    compact = country + iban_check_digits(country, bban) + bban
    style = rng.choice(["grouped", "grouped", "compact", "lower"])
    if style == "compact":
        return compact
    if style == "lower":
        return compact.lower()
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))


def ip(rng: random.Random) -> str:
    style = rng.choice(["v4", "v4", "v6-compressed", "v6-exploded", "v6-link-local", "v6-mapped", "v6-loopback"])
    if style == "v4":
        octets = (rng.choice([rng.randint(0, 255), rng.randint(1, 9), rng.randint(200, 255)]) for _ in range(4))
        return ".".join(map(str, octets))
    if style == "v6-loopback":
        return rng.choice(["::1", "::2", "0:0:0:0:0:0:0:1"])
    if style == "v6-mapped":
        return f"::ffff:{rng.randint(1, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    if style == "v6-link-local":
        return "fe80::" + ":".join(f"{rng.randint(1, 0xFFFF):x}" for _ in range(4))
    prefix = rng.choice([0x20010DB8, 0x2A001450, 0x26064700, 0x24068600])
    groups = [prefix >> 16, prefix & 0xFFFF] + [rng.choice([0, rng.randint(0, 0xFFFF)]) for _ in range(6)]
    address = ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups)))
    text = address.compressed if style == "v6-compressed" else address.exploded
    return text.upper() if rng.random() < 0.2 else text


GENERATORS: dict[str, Callable[[random.Random], str]] = {
    "EMAIL": email,
    "PHONE": phone,
    "CARD": card,
    "IBAN": iban,
    "IP": ip,
}


def survivors(value: str, out: str) -> list[str]:
    """The ways the value is still readable in the output."""
    left = []
    if value.lower() in out.lower():
        left.append("raw")
    if len(digits(value)) >= 6 and digits(value) in digits(out):
        left.append("digits")
    compact = re.sub(r"[^A-Za-z0-9]", "", value).upper()
    if len(compact) >= 8 and compact in re.sub(r"[^A-Za-z0-9]", "", out).upper():
        left.append("alphanumerics")
    return left


@pytest.mark.parametrize("kind", PII_KINDS)
def test_seeded_canaries_are_replaced_by_their_kind(kind: str) -> None:
    rng = random.Random(f"pii-{kind}")
    scrubber = Scrubber()
    failures = []
    for i in range(CANARIES_PER_KIND):
        value = GENERATORS[kind](rng)
        text = TEMPLATES[i % len(TEMPLATES)].format(value)
        conversation = scrubber.conversation()
        out = conversation.scrub(text)
        left = survivors(value, out)
        if left or placeholders(out) != [f"<{kind}_1>"] or conversation.counts != {kind: 1}:
            failures.append((value, text, out, left))
    assert not failures, f"{len(failures)} of {CANARIES_PER_KIND} failed, first: {failures[:5]}"


def test_canary_generators_make_valid_values() -> None:
    rng = random.Random(7)
    for _ in range(200):
        number_ = digits(card(rng))
        assert 15 <= len(number_) <= 16 and luhn_ok(number_)
        compact = re.sub(" ", "", iban(rng)).upper()
        rearranged = compact[4:] + compact[:4]
        assert int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1
        ipaddress.ip_address(ip(rng))


def test_several_values_in_one_message_each_get_their_placeholder() -> None:
    text = (
        "Hi, I'm anna.k@example.com (backup: ANNA.K@example.com), call +44 20 7946 0958 or "
        "(415) 555-0134. Card 4111 1111 1111 1111 exp 12/28, refund to GB82 WEST 1234 5698 7654 32. "
        "Router 192.168.1.20, the printer is on fe80::1ff:fe23:4567:890a."
    )
    conversation = Scrubber().conversation()
    # IPv6 addresses are found in a pass before the numbers, so they are numbered first.
    assert conversation.scrub(text) == (
        "Hi, I'm <EMAIL_1> (backup: <EMAIL_1>), call <PHONE_1> or <PHONE_2>. Card <CARD_1> exp 12/28, "
        "refund to <IBAN_1>. Router <IP_2>, the printer is on <IP_1>."
    )
    assert conversation.counts == {"EMAIL": 2, "PHONE": 2, "CARD": 1, "IBAN": 1, "IP": 2}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("card 4111 1111 1111 1111 12/28 ok", "card <CARD_1> 12/28 ok", id="card-then-expiry"),
        pytest.param("ES91 2100 0418 4502 0005 1332 from Bank", "<IBAN_1> from Bank", id="iban-then-words"),
        pytest.param("AT61 1904 3002 3457 3201 y", "<IBAN_1> y", id="iban-then-letter"),
        pytest.param("call 415 555 0134 2 times", "call <PHONE_1> 2 times", id="phone-then-number"),
        pytest.param("+44 20 7946 0958 2026 11 22", "<PHONE_1> 2026 11 22", id="international-phone-then-date"),
        pytest.param("415-555-0134,415-555-0199/(02) 9876 5432", "<PHONE_1>,<PHONE_2>/<PHONE_3>", id="phone-list"),
        pytest.param("10.0.0.1-10.0.0.9, 10.0.0.12", "<IP_1>-<IP_2>, <IP_3>", id="ip-range-and-list"),
        pytest.param("[2001:db8::1]:8080 and 10.0.0.1:443", "[<IP_1>]:8080 and <IP_2>:443", id="ip-with-port"),
    ],
)
def test_a_value_ends_where_it_ends(text: str, expected: str) -> None:
    assert Scrubber().conversation().scrub(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("Thanks4111 1111 1111 1111.", "Thanks<CARD_1>.", id="card"),
        pytest.param("refund toDE89 3704 0044 0532 0130 00", "refund to<IBAN_1>", id="iban"),
        pytest.param("call me at415-555-0134", "call me at<PHONE_1>", id="phone"),
        pytest.param("Thanks(562) 438-1372 or help+49 30 359631180.", "Thanks<PHONE_1> or help<PHONE_2>.", id="phones"),
        pytest.param("thanks34.40.176.58", "thanks<IP_1>", id="ipv4"),
        pytest.param("Thanksf1f5:7453:a21b:6eef:5d97:63a0:1b81:39ce.", "Thanks<IP_1>.", id="ipv6"),
        pytest.param("a@example.com.68.101.184.229.", "<EMAIL_1>.<IP_1>.", id="after-an-email"),
        pytest.param("092 0566 0132.20.121.150.117.", "<PHONE_1>.<IP_1>.", id="after-a-phone"),
    ],
)
def test_a_value_glued_to_a_word_is_found(text: str, expected: str) -> None:
    assert Scrubber().conversation().scrub(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "SN0123456789, ORD1234567890 and 1Z999AA10123456784",
        "x4111111111111111 and v1.2.3.4",
        "commit deadbeef1234567890",
    ],
)
def test_digits_inside_an_id_or_a_hash_are_not_a_value(text: str) -> None:
    assert Scrubber().conversation().scrub(text) == text


# --- numbering -----------------------------------------------------------------------------------


def test_numbering_is_stable_within_a_conversation() -> None:
    conversation = Scrubber().conversation()
    assert conversation.scrub("mail a@example.com") == "mail <EMAIL_1>"
    assert conversation.scrub("or b@example.com?") == "or <EMAIL_2>?"
    assert conversation.scrub("no, a@example.com and b@example.com") == "no, <EMAIL_1> and <EMAIL_2>"
    # Kinds are numbered separately.
    assert conversation.scrub("+1 415 555 0134") == "<PHONE_1>"


def test_numbering_restarts_for_each_conversation() -> None:
    scrubber = Scrubber()
    first = scrubber.conversation()
    assert first.scrub("a@example.com b@example.com") == "<EMAIL_1> <EMAIL_2>"
    second = scrubber.conversation()
    assert second.scrub("b@example.com") == "<EMAIL_1>"
    assert first.scrub("b@example.com") == "<EMAIL_2>"  # the first conversation keeps its own numbers


@pytest.mark.parametrize(
    "spellings",
    [
        pytest.param(["John.Doe@Example.com", "john.doe@example.com", "JOHN.DOE@EXAMPLE.COM"], id="email-case"),
        pytest.param(["+1 415 555 0134", "+1-415-555-0134", "+1.415.555.0134", "+14155550134"], id="phone-separators"),
        pytest.param(["(415) 555-0134", "415-555-0134", "415.555.0134", "415 555 0134"], id="phone-national"),
        pytest.param(["4111 1111 1111 1111", "4111-1111-1111-1111", "4111111111111111"], id="card-grouping"),
        pytest.param(["DE89 3704 0044 0532 0130 00", "DE89370400440532013000", "de89370400440532013000"], id="iban"),
        pytest.param(["2001:db8::1", "2001:DB8:0:0:0:0:0:1", "2001:0db8:0000:0000:0000:0000:0000:0001"], id="ipv6"),
    ],
)
def test_values_are_identified_after_normalising(spellings: list[str]) -> None:
    conversation = Scrubber().conversation()
    outs = [conversation.scrub(f"it is {spelling}.") for spelling in spellings]
    assert len(set(outs)) == 1, outs
    assert placeholders(outs[0])[0].endswith("_1>")


# --- invalid candidates and false positives ------------------------------------------------------


def test_a_sixteen_digit_number_that_fails_luhn_is_kept() -> None:
    for value in ["1234567812345678", "1234 5678 9012 3456", "4111-1111-1111-1112"]:
        assert not luhn_ok(digits(value))
        text = f"my account number is {value}, is that right?"
        assert Scrubber().conversation().scrub(text) == text


def test_a_card_shaped_number_that_fails_luhn_may_still_be_a_phone_number() -> None:
    value = "3782 822463 10006"  # grouped like an Amex number
    assert not luhn_ok(digits(value))
    assert Scrubber().conversation().scrub(f"call {value}") == "call <PHONE_1>"


def test_a_number_after_the_international_prefix_is_a_phone_even_when_it_passes_luhn() -> None:
    value = with_luhn_digit("0044207946095")  # no card number starts with 0
    assert Scrubber().conversation().scrub(f"call {value}") == "call <PHONE_1>"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("refund to DE88 3704 0044 0532 0130 00 please", id="iban-wrong-check-digits"),
        pytest.param("refund to DE88370400440532013000 please", id="iban-compact-wrong-check-digits"),
        pytest.param("the IP is 999.1.1.1", id="ipv4-octet-out-of-range"),
        pytest.param("or 256.256.256.256 or 10.0.0", id="ipv4-others"),
        pytest.param("std::vector, dead::beef, a::b", id="ipv6-lookalikes-without-digits"),
        pytest.param("12:34:56 and 00:1A:2B:3C:4D:5E", id="time-and-mac"),
    ],
)
def test_invalid_candidates_are_kept(text: str) -> None:
    assert Scrubber().conversation().scrub(text) == text


FALSE_POSITIVES = [
    "Order NH-20471 hasn't shipped yet.",
    "Ticket #104233 and #1042331234 are both open.",
    "It was delivered on 2026-11-22, not 22.11.2026 or 11/22/2026.",
    "The courier came at 14:30 and again at 9:05pm, 2026-11-22 14:30:00 in the log.",
    "It cost $1,299.00, then €1.299,00, then 1 299 000 VND, total $12,345,678.90.",
    "Updating from v2.14.3 to v2.15.0 broke it; firmware 3.2.1 works, build 10.0.19045.3803.",
    "The T-200 and the X-1000 Pro both do this.",
    "I ordered 3 items, 2 x 500 ml and 12 pcs; 100 000 000 is too many.",
    "Ship to SW1A 1AA, 94103, 94103-1234 or 10115 Berlin.",
    "Pin 1234, code 987654, 6 digits, ref 12345678, page 3 of 12.",
    "Pi is 3.14159265358, the ratio 16:9, 50%, 0.5 kg.",
    "EAN 4006381333931, ISBN 9783161484100, sent at 1700000000123 ms.",
    "Tracking 1Z999AA10123456784 via UPS, 9400 1000 0000 0000 0000 00 via USPS.",
    "Chrome 131.0.6778.86 on Windows 10.0.19045, error 0x80070005.",
    "Sizes 38, 40, 42 and 44 are out of stock.",
    "Call me after 5 or +5 days; score 3-2; rated 4.5/5.",
    "Room 101, floor 3, suite 12-B, gate A12.",
    "Version 1.0.0-beta.2 (build 2026.11.22) fixed it.",
]


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_the_numbers_of_a_support_chat_are_kept(text: str) -> None:
    assert Scrubber().conversation().scrub(text) == text


def test_text_without_digits_or_at_signs_is_returned_as_is() -> None:
    text = "Hi! I can't log in (it says: try again later). Thanks :)"
    assert Scrubber().conversation().scrub(text) is text


def test_long_rows_of_numbers_are_handled() -> None:
    # Each group of such a row starts a candidate: the patterns bound how far one may reach.
    conversation = Scrubber().conversation()
    row = "12 " * 5000
    assert conversation.scrub(row).count("<PHONE_") <= 1
    for text in ["1234 " * 4000, "(1) " * 5000, "+1 " * 5000, "AB12 " * 4000, "1.2.3." * 3000, "a:1:" * 4000]:
        assert not placeholders(conversation.scrub(text))


# --- configured patterns -------------------------------------------------------------------------


def test_configured_patterns_get_numbered_placeholders() -> None:
    conversation = Scrubber({"ORDER": r"NH-\d{5}"}).conversation()
    assert conversation.scrub("NH-20471 and NH-20472, again NH-20471") == "<ORDER_1> and <ORDER_2>, again <ORDER_1>"
    assert conversation.counts == {"ORDER": 3}


def test_configured_patterns_run_before_the_built_in_kinds() -> None:
    text = "account ACC 4155550134, phone 415 555 0134"
    assert Scrubber().conversation().scrub(text) == "account ACC <PHONE_1>, phone <PHONE_1>"
    scrubbed = Scrubber({"ACCOUNT": r"ACC \d{10}"}).conversation().scrub(text)
    assert scrubbed == "account <ACCOUNT_1>, phone <PHONE_1>"


def test_a_later_pattern_does_not_rewrite_an_earlier_placeholder() -> None:
    conversation = Scrubber({"ORDER": r"NH-\d{5}", "NUMBER": r"\d+"}).conversation()
    assert conversation.scrub("NH-20471 times 3") == "<ORDER_1> times <NUMBER_1>"


@pytest.mark.parametrize(
    ("patterns", "named"),
    [
        pytest.param({"ORDER": r"NH-(\d{5}"}, "ORDER", id="unbalanced-parenthesis"),
        pytest.param({"ORDER": "[a-"}, "ORDER", id="unterminated-set"),
        pytest.param({"ORDER": r"(?P<x>a)(?P<x>b)"}, "ORDER", id="duplicate-group"),
        pytest.param({"order": r"NH-\d{5}"}, "order", id="lower-case-name"),
        pytest.param({"1ORDER": r"x"}, "1ORDER", id="name-starting-with-digit"),
        pytest.param({"ORDER ID": r"x"}, "ORDER ID", id="name-with-space"),
        pytest.param({"EMPTY": r"x*"}, "EMPTY", id="matches-empty-string"),
        pytest.param({"ORDER": 5}, "ORDER", id="not-a-string"),
    ],
)
def test_a_bad_pattern_is_a_value_error_naming_it(patterns: dict[str, str], named: str) -> None:
    with pytest.raises(ValueError) as raised:
        Scrubber(patterns)
    message = str(raised.value)
    assert named in message
    assert "\n" not in message


# --- counts and purity ---------------------------------------------------------------------------


def test_counts_are_per_kind_and_per_occurrence() -> None:
    conversation = Scrubber({"ORDER": r"NH-\d{5}"}).conversation()
    conversation.scrub("a@example.com, a@example.com and b@example.com; NH-20471")
    conversation.scrub("call +1 415 555 0134 about 4111 1111 1111 1111 or 10.0.0.1")
    assert conversation.counts == {"EMAIL": 3, "ORDER": 1, "PHONE": 1, "CARD": 1, "IP": 1}
    assert Scrubber().conversation().counts == {}


def test_the_module_imports_only_the_standard_library() -> None:
    tree = ast.parse(Path(pii.__file__).read_text(encoding="utf-8"))
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    } | {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module}
    assert imported - {"__future__"} <= set(sys.stdlib_module_names), imported


# -- the organisation's own values (pii_allow) ---------------------------------------------------

ALLOW = ("nimbushome.example", "billing@partner.example", "+1 (415) 555-0134", "DE89 3704 0044 0532 0130 00", "10.0.0.1")


@pytest.mark.parametrize(
    "kept",
    [
        "no-reply@nimbushome.example",  # at an allowed domain
        "Help@EU.Nimbushome.example",  # under it, any case
        "billing@partner.example",  # an allowed address
        "415 555 0134",  # an allowed number without its country code
        "+1 415-555-0134",  # and written otherwise
        "DE89370400440532013000",  # an allowed IBAN without its spaces
        "10.0.0.1",
    ],
)
def test_allowed_values_stay_as_written(kept: str) -> None:
    scrub = Scrubber(allow=ALLOW).conversation()
    assert scrub.scrub(f"Write to {kept} today.") == f"Write to {kept} today."
    assert not scrub.counts and sum(scrub.allowed.values()) == 1


@pytest.mark.parametrize(
    ("text", "placeholder"),
    [
        ("Write to ana@gmail.com today.", "<EMAIL_1>"),
        ("Write to ana@nimbushome.example.evil.com today.", "<EMAIL_1>"),  # not under the allowed domain
        ("Write to me@othernimbushome.example today.", "<EMAIL_1>"),  # a different domain that ends alike
        ("Write to billing@partner.example.org today.", "<EMAIL_1>"),
        ("Write to +1 212 555 0199 today.", "<PHONE_1>"),
        ("Write to 555 0134 000 today.", "<PHONE_1>"),
        ("Write to 10.0.0.2 today.", "<IP_1>"),
    ],
)
def test_a_customers_values_are_still_replaced(text: str, placeholder: str) -> None:
    scrub = Scrubber(allow=ALLOW).conversation()
    assert placeholder in scrub.scrub(text)


def test_allowed_values_do_not_take_a_placeholder_number() -> None:
    scrub = Scrubber(allow=ALLOW).conversation()
    text = "From no-reply@nimbushome.example to ana@gmail.com, then bo@gmail.com."
    assert scrub.scrub(text) == "From no-reply@nimbushome.example to <EMAIL_1>, then <EMAIL_2>."


def test_an_allowed_exact_text_stays_where_a_configured_pattern_matches() -> None:
    scrub = Scrubber({"ORDER": r"NH-\d{5}"}, allow=["NH-00000"]).conversation()
    assert scrub.scrub("Example: NH-00000. Yours: NH-20471.") == "Example: NH-00000. Yours: <ORDER_1>."


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("Call 020 7946 0958.", True),  # the allowed number with its trunk 0
        ("Call +44 20 7946 0958.", True),
        ("Call 0044 20 7946 0958.", True),
        ("Call +1 207 946 0958.", False),  # a customer's number that merely ends like it
        ("Call 7946 0958 now, 12 07946 0958.", False),
    ],
)
def test_an_allowed_phone_number_is_that_number_only(text: str, kept: bool) -> None:
    scrub = Scrubber(allow=["+44 (0)20 7946 0958"]).conversation()
    assert (scrub.scrub(text) == text) is kept


def test_a_short_allowed_number_does_not_allow_longer_ones_ending_like_it() -> None:
    scrub = Scrubber(allow=["555 0134", "DE89 3704 0044 0532 0130 00"]).conversation()
    assert scrub.scrub("Call +1 (212) 555-0134.") == "Call <PHONE_1>."
    assert scrub.scrub("Card 4111 1111 1111 1111.") == "Card <CARD_1>."  # an IBAN entry's digits allow no card
