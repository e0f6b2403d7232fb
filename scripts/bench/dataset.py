"""Dataset build at scale: `build_snapshot` over a synthetic log of 100k conversations / 1M messages.

    python scripts/bench/dataset.py [--conversations 100000] [--turns 5] [--rated-share 0.3] [--seed 0]
                                    [--all-approved] [--runs 1] [--cache-dir /tmp/assistant-bench-dataset]
                                    [--keep] [--tokenizer DIR] [--profile 30 [--profile-out FILE]]

Setup (not measured): a synthetic database made through the real migrations (`Store.open`), then
filled with plain `sqlite3` executemany in big transactions, FTS triggers and all; cached under
--cache-dir, keyed by the parameters, the generator version and the sample texts, and copied into a
fresh data dir for each run. The tokenizer: the demo model's byte-level BPE (2048 tokens) with its
ChatML chat template, trained in seconds on the sample texts with `assistant.demo.build` (no
downloads); --tokenizer DIR uses a saved Hugging Face tokenizer instead (e.g. Qwen2.5's).

The log (default mix):
- every conversation: the default system prompt, `--turns` user/assistant pairs in one linear
  branch, texts drawn from conversations/samples/*.jsonl, varied (greetings, order numbers
  NH-1xxxxx, invoice numbers, closing lines) so dedup keeps most rows; ~5% of user messages carry
  an e-mail address or a phone number (PII to scrub); 2% of conversations archived;
- feedback: --rated-share (30%) of conversations have 1 or 2 (half each) rated replies; a rating is
  75% thumbs-up, 25% thumbs-down, half the thumbs-down with a correction; 5% of rated replies have a
  second rater (staff, the same verdict), 5% an older superseded rating (current = 0);
- reviews of the rated replies: 60% approved (the correction when there is one; else a curator's
  edit for a thumbs-down and for 10% of thumbs-up; else the reply), 10% rejected, 30% pending (a
  third of those with a 'pending' reviews row, the rest none).
  That is about 27k SFT rows from 100k conversations.
--all-approved: the upper bound: every assistant reply rated (same rating/correction mix) and
approved: 500k approved replies, about 490k SFT rows after dedup.

Measured, in a fresh subprocess (so setup memory does not count): open the store, load the
tokenizer (both reported, not in the build time), then `build_snapshot` end to end: reading the
snapshot from SQLite, cleaning and PII scrubbing, dedup, token lengths, split, rendering and writing
the files, registering. Phases are timed by wrapping functions from outside (the source is not
touched): read (the store's generator), examples (cleaning, PII, rows per conversation), dedup
(rendering each row's JSON line and its keys), tokenize (the tokenizer's calls on the main thread:
templates), wait (for the worker thread that tokenises texts, reported apart: it runs alongside),
write (the split files, fsync), hash (the snapshot id: the files read back), manifest
(manifest.json), register; "other" is the rest (lengths, filters, split). Peak memory: ru_maxrss of that subprocess (imports
included). The child imports `assistant` from this checkout (not whatever the venv has installed).
--profile N: run the build under cProfile instead and print the top N functions (times inflate).

--runs N: N measurements (median build time judged, highest peak). Each run also reports the CPU
time other processes used meanwhile (from /proc/stat): the build is mostly single-threaded, so on a
2-core machine anything else running shows up in the numbers, flagged "timings disturbed".

Targets on the 2-core machine (issue 11): the default mix <= 15 s and <= 1 GiB peak RSS;
--all-approved <= 90 s and <= 2 GiB.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import json
import os
import platform
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

GENERATOR_VERSION = 1
TARGETS = {False: (15.0, 1024.0), True: (90.0, 2048.0)}  # all approved: (seconds, peak MiB)
ROOT = Path(__file__).resolve().parents[2]
BATCH_CONVERSATIONS = 10_000
USERS = 5_000
STAFF = ("cora", "dev", "sam", "lee")
CURATOR = "cora"


# -- the synthetic log ---------------------------------------------------------------------------

GREETINGS = ("", "", "", "Hi, ", "Hello! ", "Hey there. ", "Good morning, ", "Quick question: ", "Hi again. ", "hey ")
CLOSINGS = ("", "", "", " Thanks!", " Thank you.", " thx", " Appreciate it.", " Any ideas?", " Please help.")
ORDER_LINES = (" My order is NH-{n}.", " (order NH-{n})", " It's about order NH-{n}.", " Order number: NH-{n}")
INVOICE_LINES = (" The invoice says INV-{n}.", " Invoice INV-{n}.")
OPENERS = ("", "", "", "Thanks for reaching out. ", "Happy to help. ", "Sorry about the trouble. ", "Good question. ")
ORDER_REPLIES = ("I looked at order NH-{n}. ", "Thanks, I found NH-{n}. ", "For order NH-{n}: ")
FIRST = ("alex", "maria", "chen", "fatima", "john", "olga", "sam", "priya", "lucas", "amina", "tom", "yuki")
LAST = ("smith", "garcia", "wang", "khan", "brown", "ivanova", "lee", "patel", "silva", "okafor", "jones", "sato")
DOMAINS = ("gmail.com", "outlook.com", "yahoo.com", "proton.me", "icloud.com", "example.org")
PHONE_FORMATS = ("+1 415 555 {a:04d}", "(415) 555-{a:04d}", "+44 20 7946 {a:04d}", "415-555-{a:04d}", "+49 30 901820{b:02d}")
PII_LINES = (
    " You can email me at {email}.",
    " My email is {email} if you need it.",
    " Call me on {phone}, please.",
    " My phone number is {phone}.",
    " Reach me at {email} or {phone}.",
)
EXTRA_SENTENCES = (
    "If it still does not work, write to us in the app under Settings > Help > Chat with us.",
    "You will get a confirmation email from no-reply@nimbushome.example within a few minutes.",
    "Let me know if anything is unclear and I will walk you through it step by step.",
    "This applies to orders shipped within the US; other countries see local rules at checkout.",
    "Your devices keep working in the meantime, so nothing is lost.",
)
REASONS = ('["wrong facts"]', '["incomplete"]', '["off-topic"]', '["tone"]', '["wrong facts", "incomplete"]', "[]")
TAGS = ('["billing"]', '["shipping"]', '["needs-followup"]', "[]")


def sample_pairs() -> list[tuple[str, str]]:
    """(question, answer) pairs: every user message of the samples with the reply that follows it."""
    from assistant.demo.samples import load_samples

    pairs = []
    for conversation in load_samples():
        for question, answer in zip(conversation, conversation[1:]):
            if question["role"] == "user" and answer["role"] == "assistant":
                pairs.append((question["content"], answer["content"]))
    return pairs


def iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds * 1000) % 1000:03d}Z"


class Generator:
    """Rows for the tables, conversation by conversation, deterministic given the seed."""

    def __init__(self, args: argparse.Namespace) -> None:
        from assistant.settings import DEFAULT_SYSTEM_PROMPT
        from assistant.store.db import title_from

        self.rng = random.Random(args.seed)
        self.turns = args.turns
        self.rated_share = 1.0 if args.all_approved else args.rated_share
        self.all_approved = args.all_approved
        self.pairs = sample_pairs()
        self.system = DEFAULT_SYSTEM_PROMPT
        self.title_from = title_from
        self.start = 1_767_225_600.0  # 2026-01-01
        self.message_id = 0
        self.feedback_id = 0

    def pii(self) -> str:
        rng = self.rng
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first}.{last}{rng.randint(1, 99)}@{rng.choice(DOMAINS)}"
        phone = rng.choice(PHONE_FORMATS).format(a=rng.randint(0, 9999), b=rng.randint(0, 99))
        return rng.choice(PII_LINES).format(email=email, phone=phone)

    def question(self, text: str, order: int | None) -> str:
        rng = self.rng
        text = rng.choice(GREETINGS) + (text[0].lower() + text[1:] if rng.random() < 0.3 else text)
        if order is not None:
            text += rng.choice(ORDER_LINES).format(n=order)
        elif rng.random() < 0.1:
            text += rng.choice(INVOICE_LINES).format(n=rng.randint(2_000_000, 2_999_999))
        if rng.random() < 0.05:
            text += self.pii()
        return text + rng.choice(CLOSINGS)

    def answer(self, text: str, order: int | None) -> str:
        rng = self.rng
        opener = rng.choice(ORDER_REPLIES).format(n=order) if order is not None and rng.random() < 0.5 else ""
        text = (opener or rng.choice(OPENERS)) + text
        if rng.random() < 0.2:
            text += "\n\n" + rng.choice(EXTRA_SENTENCES)
        return text

    def conversation(self, cid: int) -> tuple[tuple, list[tuple], list[tuple], list[tuple]]:
        rng = self.rng
        at = self.start + cid * 60.0
        user = f"user{rng.randrange(USERS):04d}"
        order = rng.randint(100_000, 199_999) if rng.random() < 0.4 else None
        messages, replies = [], []
        parent = None
        for turn in range(self.turns):
            question, answer = rng.choice(self.pairs)
            for role, content in (("user", self.question(question, order if turn == 0 else None)),
                                  ("assistant", self.answer(answer, order))):
                self.message_id += 1
                at += rng.uniform(5, 90)
                if role == "user":
                    messages.append((self.message_id, cid, parent, role, content, iso(at),
                                     None, None, None, None, None, None, None))
                else:
                    tokens = max(1, len(content) // 4)
                    messages.append((self.message_id, cid, parent, role, content, iso(at), "assistant-demo", None,
                                     '{"temperature": 0.7, "max_new_tokens": 512}', round(rng.uniform(80, 400), 1),
                                     tokens, round(rng.uniform(20, 60), 1), "stop"))
                    replies.append((self.message_id, content, at))
                parent = self.message_id
        first_user = messages[0][4]
        conversation = (cid, self.title_from(first_user), user, iso(self.start + cid * 60.0), iso(at),
                        self.system, int(rng.random() < 0.02))
        feedback, reviews = self.curation(user, replies)
        return conversation, messages, feedback, reviews

    def curation(self, user: str, replies: list[tuple[int, str, float]]) -> tuple[list[tuple], list[tuple]]:
        rng = self.rng
        if self.all_approved:
            rated = replies
        elif rng.random() < self.rated_share:
            rated = rng.sample(replies, min(len(replies), rng.choice((1, 2))))
        else:
            return [], []
        feedback, reviews = [], []
        for message_id, content, at in sorted(rated):
            up = rng.random() < 0.75
            correction = ""
            if not up and rng.random() < 0.5:
                correction = content.split("\n\n")[0] + " " + rng.choice(EXTRA_SENTENCES)
            rated_at = iso(at + rng.uniform(10, 600))
            raters = [(user, up, correction)]
            if rng.random() < 0.05:
                raters.append((rng.choice(STAFF), up, ""))
            for rater, verdict, text in raters:
                if rng.random() < 0.05:  # rated before, then changed: the earlier row stays, not current
                    self.feedback_id += 1
                    feedback.append((self.feedback_id, message_id, rater, -1 if verdict else 1, "[]", "", "",
                                     rated_at, rated_at, 0))
                self.feedback_id += 1
                feedback.append((self.feedback_id, message_id, rater, 1 if verdict else -1,
                                 "[]" if verdict else rng.choice(REASONS), "", text, rated_at, rated_at, 1))
            decided_at = iso(at + rng.uniform(3600, 86400 * 7))
            roll = 0.0 if self.all_approved else rng.random()
            if roll < 0.6:
                if correction:
                    answer, source = correction, "correction"
                elif not up or rng.random() < 0.1:
                    answer, source = "To be precise: " + content.split("\n\n")[0], "edit"
                else:
                    answer, source = content, "reply"
                reviews.append((message_id, "approved", answer, source, rng.choice(TAGS), CURATOR, decided_at, decided_at))
            elif roll < 0.7:
                reviews.append((message_id, "rejected", None, None, rng.choice(TAGS), CURATOR, decided_at, decided_at))
            elif roll < 0.8:
                reviews.append((message_id, "pending", None, None, rng.choice(TAGS[:3]), CURATOR, None, decided_at))
        return feedback, reviews


def generate(path: Path, args: argparse.Namespace) -> dict[str, int]:
    """A fresh database at `path`: schema by the real migrations, rows by executemany."""
    from assistant.store import Store

    Store.open(path).close()
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -262144")
    generator = Generator(args)
    counts = dict.fromkeys(("conversations", "messages", "feedback", "reviews"), 0)
    inserts = {
        "conversations": "INSERT INTO conversations (id, title, user, created_at, updated_at, system_prompt, archived)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        "messages": "INSERT INTO messages (id, conversation_id, parent_id, role, content, created_at, model, adapter,"
        " params, ttft_ms, token_count, tokens_per_s, finish_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "feedback": "INSERT INTO feedback (id, message_id, user, rating, reasons, comment, correction, created_at,"
        " updated_at, current) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        "reviews": "INSERT INTO reviews (message_id, status, answer, source, tags, curator, decided_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    }
    started = time.perf_counter()
    for first in range(1, args.conversations + 1, BATCH_CONVERSATIONS):
        batch: dict[str, list[tuple]] = {name: [] for name in inserts}
        for cid in range(first, min(first + BATCH_CONVERSATIONS, args.conversations + 1)):
            conversation, messages, feedback, reviews = generator.conversation(cid)
            batch["conversations"].append(conversation)
            batch["messages"] += messages
            batch["feedback"] += feedback
            batch["reviews"] += reviews
        conn.execute("BEGIN")
        for name, sql in inserts.items():  # in foreign-key order
            conn.executemany(sql, batch[name])
            counts[name] += len(batch[name])
        conn.execute("COMMIT")
        print(f"  generated {counts['conversations']}/{args.conversations} conversations"
              f" ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
    return counts


def database_key(args: argparse.Namespace) -> str:
    from assistant.store.migrations import migrations

    pairs = sample_pairs()
    blob = json.dumps(
        {
            "version": GENERATOR_VERSION,
            "conversations": args.conversations,
            "turns": args.turns,
            "rated_share": args.rated_share,
            "all_approved": args.all_approved,
            "seed": args.seed,
            "samples": hashlib.sha256(json.dumps(pairs).encode()).hexdigest(),
            "migrations": [m.name for m in migrations._migrations],
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def ensure_database(args: argparse.Namespace) -> tuple[Path, dict[str, int], float | None]:
    """The cached database for these parameters (made first if missing); seconds spent making it."""
    directory = args.cache_dir / f"db-{database_key(args)}"
    path = directory / "assistant.db"
    info = directory / "counts.json"
    if path.is_file() and info.is_file():
        return path, json.loads(info.read_text()), None
    shutil.rmtree(directory, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=".db-", dir=args.cache_dir))
    started = time.perf_counter()
    counts = generate(staging / "assistant.db", args)
    seconds = time.perf_counter() - started
    (staging / "counts.json").write_text(json.dumps(counts))
    os.replace(staging, directory)
    return path, counts, seconds


def ensure_tokenizer(cache_dir: Path) -> Path:
    """The demo recipe's tokenizer (trained on the sample texts), saved once."""
    from assistant.demo.build import CHAT_TEMPLATE, RECIPES, train_tokenizer
    from assistant.demo.samples import fingerprint, load_samples

    samples = load_samples()
    recipe = RECIPES["demo"]
    key = hashlib.sha256(f"{fingerprint(samples)}{recipe.vocab_size}{CHAT_TEMPLATE}".encode()).hexdigest()[:12]
    directory = cache_dir / f"tokenizer-{key}"
    if not (directory / "tokenizer_config.json").is_file():
        staging = Path(tempfile.mkdtemp(prefix=".tokenizer-", dir=cache_dir))
        train_tokenizer([m["content"] for c in samples for m in c], recipe.vocab_size).save_pretrained(staging)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(staging, directory)
    return directory


# -- the measured run (in its own process) -------------------------------------------------------


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def busy_cpu_seconds() -> float:
    """CPU seconds every process on the machine has spent busy (all of /proc/stat but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


class Phases:
    """Seconds spent in wrapped functions (outermost calls only, so nested phases are not counted twice;
    per thread: a call on another thread than the main one counts as NAME (worker))."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.peak_after: dict[str, float] = {}  # peak RSS (MiB) when the phase last ended
        self._local = threading.local()

    def wrap(self, name: str, function: Callable) -> Callable:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._local, "depth", 0):
                return function(*args, **kwargs)
            key = name if threading.current_thread() is threading.main_thread() else f"{name} (worker)"
            self._local.depth = 1
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started
                self.peak_after[key] = peak_mib()
                self._local.depth = 0

        return timed

    def wrap_iterator(self, name: str, iterator: Iterator) -> Iterator:
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
                self.peak_after[name] = peak_mib()
                return
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started
            yield item


def measure(data_dir: Path, tokenizer_dir: Path, *, profile: int = 0, profile_out: Path | None = None) -> dict[str, Any]:
    """Build a snapshot from data_dir/assistant.db; times, memory and counts."""
    started = time.perf_counter()
    from assistant.data import builder, snapshot
    from assistant.data.tokens import ChatTokenizer
    from assistant.store import Store

    store = Store.open(data_dir / "assistant.db")
    opened = time.perf_counter()
    tokenizer = ChatTokenizer.load(tokenizer_dir, tokenizer_dir.name)
    loaded = time.perf_counter()
    before_rss = rss_mib()

    phases = Phases()
    if not profile:
        read = store.training_conversations
        store.training_conversations = lambda: phases.wrap_iterator("read", read())
        builder._conversation_examples = phases.wrap("examples", builder._conversation_examples)
        builder._Builder._deduplicate = phases.wrap("dedup", builder._Builder._deduplicate)
        tokenizer.content_lengths = phases.wrap("tokenize", tokenizer.content_lengths)
        tokenizer.template = phases.wrap("tokenize", tokenizer.template)
        snapshot.StagingSink._write = phases.wrap("write", snapshot.StagingSink._write)
        snapshot.StagingSink.close = phases.wrap("write", snapshot.StagingSink.close)
        snapshot.snapshot_id = phases.wrap("hash", snapshot.snapshot_id)
        snapshot._write_manifest = phases.wrap("manifest", snapshot._write_manifest)
        concurrent.futures.Future.result = phases.wrap("wait", concurrent.futures.Future.result)
        store.register_dataset = phases.wrap("register", store.register_dataset)

    policy = builder.BuildPolicy()
    build_started = time.perf_counter()
    if profile:
        import cProfile
        import io
        import pstats

        profiler = cProfile.Profile()
        result = profiler.runcall(snapshot.build_snapshot, store, data_dir, policy, tokenizer, user="bench")
        build_s = time.perf_counter() - build_started
        if profile_out:
            profiler.dump_stats(str(profile_out))
        text = io.StringIO()
        stats = pstats.Stats(profiler, stream=text)
        stats.sort_stats("tottime").print_stats(profile)
        stats.sort_stats("cumulative").print_stats(profile)
        profile_text = text.getvalue()
    else:
        result = snapshot.build_snapshot(store, data_dir, policy, tokenizer, user="bench")
        build_s = time.perf_counter() - build_started
        profile_text = ""
    counts = result.manifest["counts"]
    return {
        "import_open_s": opened - started,
        "tokenizer_load_s": loaded - opened,
        "build_s": build_s,
        "phases": phases.seconds,
        "peak_after": phases.peak_after,
        "rss_before_build_mib": before_rss,
        "peak_rss_mib": peak_mib(),
        "rows": counts["rows"],
        "conversations": counts["conversations"],
        "filters": counts["filters"],
        "pii_replaced": counts["pii_replaced"],
        "tokens_train": {k: v for k, v in result.manifest["tokens"]["train"].items() if k != "histogram"},
        "files_mib": {p.name: p.stat().st_size / 2**20 for p in sorted(result.path.iterdir())},
        "snapshot": result.id,
        "profile": profile_text,
    }


def child(args: argparse.Namespace) -> int:
    report = measure(args.child, args.tokenizer_dir, profile=args.profile, profile_out=args.profile_out)
    print("RESULT " + json.dumps(report))
    return 0


# -- the driver --------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--turns", type=int, default=5, help="User/assistant pairs per conversation.")
    parser.add_argument("--rated-share", type=float, default=0.3, help="Share of conversations with rated replies.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--all-approved", action="store_true", help="Every assistant reply rated and approved.")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "assistant-bench-dataset")
    parser.add_argument("--runs", type=int, default=1, help="Measure N times (fresh process and copy each).")
    parser.add_argument("--keep", action="store_true", help="Keep the data dir with the built snapshot (last run).")
    parser.add_argument("--tokenizer", type=Path, help="A saved Hugging Face tokenizer (default: the demo one).")
    parser.add_argument("--profile", type=int, default=0, metavar="N", help="Profile the build; print the top N.")
    parser.add_argument("--profile-out", type=Path, help="With --profile: save the pstats here.")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--tokenizer-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))  # this checkout's `assistant`, in the driver and (PYTHONPATH) the child
    if args.child:
        return child(args)

    from assistant.logs import quiet_libraries

    quiet_libraries()  # as the CLI does (TOKENIZERS_PARALLELISM=false among others); the child inherits it
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    db, counts, generated_s = ensure_database(args)
    tokenizer_dir = args.tokenizer or ensure_tokenizer(args.cache_dir)
    mix = "all approved" if args.all_approved else f"rated share {args.rated_share}"
    print(f"machine: {os.cpu_count()} CPUs, {platform.machine()}, Linux {platform.release()}, "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")
    print(f"database: {counts['conversations']} conversations, {counts['messages']} messages, "
          f"{counts['feedback']} feedback, {counts['reviews']} reviews ({mix}, seed {args.seed}); "
          f"{db.stat().st_size / 2**20:.0f} MiB; " + (f"generated in {generated_s:.0f} s" if generated_s else f"cached: {db}"))
    print(f"tokenizer: {tokenizer_dir}")

    results = []
    for run in range(1, args.runs + 1):
        r, data_dir = run_once(args, db, tokenizer_dir)
        if r is None:
            return 2
        results.append(r)
        print(f"run {run}: build_snapshot {r['build_s']:.2f} s, peak RSS {r['peak_rss_mib']:.0f} MiB; "
              f"process {r['wall_s']:.1f} s wall, {r['own_cpu_s']:.1f} s CPU; "
              f"other processes used {r['others_cpu_s']:.1f} CPU s meanwhile"
              + (" (timings disturbed)" if r["others_cpu_s"] > 0.1 * r["wall_s"] else ""))
        if args.keep and run == args.runs:
            print(f"kept: {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)

    r = sorted(results, key=lambda x: x["build_s"])[len(results) // 2]  # the median run, in detail
    label = "median run" if len(results) > 1 else "run"
    print(f"{label}: imports + open store {r['import_open_s']:.2f} s, tokenizer load {r['tokenizer_load_s']:.2f} s (not in the build)")
    print(f"build_snapshot: {r['build_s']:.2f} s" + (" (under cProfile)" if args.profile else ""))
    if r["phases"]:
        main = {k: v for k, v in r["phases"].items() if not k.endswith("(worker)")}
        for name in ("read", "examples", "dedup", "tokenize", "wait", "write", "hash", "manifest", "register"):
            peak = r["peak_after"].get(name)
            print(f"  {name:<9} {main.get(name, 0.0):7.2f} s" + (f"   (peak RSS so far {peak:.0f} MiB)" if peak else ""))
        print(f"  {'other':<9} {r['build_s'] - sum(main.values()):7.2f} s")
        worker = r["phases"].get("tokenize (worker)", 0.0)
        print(f"  and tokenize on the worker thread {worker:.2f} s, alongside the above (wait: the main thread waiting for it)")
    print(f"memory: peak RSS {r['peak_rss_mib']:.0f} MiB (before the build: {r['rss_before_build_mib']:.0f} MiB)")
    rows = r["rows"]
    print(f"rows: train {rows['train']}, eval {rows['eval']}, dpo {rows['dpo']}, kto {rows['kto']}; "
          f"conversations train {r['conversations']['train']}, eval {r['conversations']['eval']}")
    print("filters: " + ", ".join(f"{k} {v}" for k, v in r["filters"].items() if v))
    print("pii replaced: " + (", ".join(f"{k} {v}" for k, v in r["pii_replaced"].items()) or "none"))
    t = r["tokens_train"]
    if t.get("count"):
        print(f"train tokens: total {t['total']}, p50 {t['p50']}, p99 {t['p99']}, max {t['max']}")
    print(f"snapshot: {r['snapshot']}")
    print("files: " + ", ".join(f"{name} {size:.1f} MiB" for name, size in r["files_mib"].items()))
    build_s = r["build_s"]
    peak = max(x["peak_rss_mib"] for x in results)
    target_s, target_mib = TARGETS[args.all_approved]
    time_ok = build_s <= target_s
    memory_ok = peak <= target_mib
    print(f"target time   <= {target_s:.0f} s:   {'PASS' if time_ok else 'FAIL'} ({build_s:.1f} s)")
    print(f"target memory <= {target_mib / 1024:.0f} GiB:  {'PASS' if memory_ok else 'FAIL'} ({peak:.0f} MiB)")
    if r["profile"]:
        print(r["profile"])
    return 0 if time_ok and memory_ok else 1


def run_once(args: argparse.Namespace, db: Path, tokenizer_dir: Path) -> tuple[dict[str, Any] | None, Path]:
    """One measured build in a fresh subprocess, on a fresh copy of the database."""
    data_dir = Path(tempfile.mkdtemp(prefix="bench-dataset-"))
    shutil.copyfile(db, data_dir / "assistant.db")
    command = [sys.executable, __file__, "--child", str(data_dir), "--tokenizer-dir", str(tokenizer_dir)]
    if args.profile:
        command += ["--profile", str(args.profile)]
        if args.profile_out:
            command += ["--profile-out", str(args.profile_out)]
    started = time.perf_counter()
    busy, children = busy_cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    finished = subprocess.run(command, capture_output=True, text=True, env=env)
    wall_s = time.perf_counter() - started
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    own_cpu_s = used.ru_utime + used.ru_stime - children.ru_utime - children.ru_stime
    others_cpu_s = max(0.0, busy_cpu_seconds() - busy - own_cpu_s)
    if finished.returncode != 0:
        sys.stderr.write(finished.stdout + finished.stderr)
        shutil.rmtree(data_dir, ignore_errors=True)
        return None, data_dir
    line = next(line for line in finished.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    result.update(wall_s=wall_s, own_cpu_s=own_cpu_s, others_cpu_s=others_cpu_s)
    return result, data_dir


if __name__ == "__main__":
    sys.exit(main())
