"""Chat benchmarks: cold start to first frame, the demo model's speed, key-press latency while streaming.

    python scripts/bench/chat.py [--runs 5] [--keys 40] [--recipe demo]

Runs the real `assistant chat` in a pseudo-terminal (120x40) with a fresh data dir, so what is timed
is what a user sees: bytes on the terminal.

1. Cold start: from spawning `assistant chat` to the first frame (the conversation list drawn), with the
   model still loading in the background. Baseline: a minimal Textual app started the same way.
2. The demo model on CPU: time to first token and decode tokens/s over sample questions, through the
   engine the app uses (streaming, in a thread); baseline: plain `model.generate` on the same prompts.
3. Key press to screen while a reply streams: a character typed into the input, timed until it appears
   on the terminal, (a) while the demo model streams its replies to sample questions (only keys sent
   between a question and its stored reply count) and (b) as a stress test, during one reply that never
   ends (the demo model with its end-of-turn token suppressed); baseline: the same with nothing streaming.

Targets on the 2-core machine: first frame <= 1.0 s; key press to screen p95 <= 50 ms while streaming.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import re
import select
import shutil
import signal
import statistics
import struct
import sys
import tempfile
import termios
import time
from pathlib import Path

ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]|\x1b[()][0-9A-Za-z]")
ROWS, COLS = 40, 120
MARK = "¤"

MINIMAL_APP = """
from textual.app import App
from textual.widgets import Input, Footer
class Minimal(App):
    def compose(self):
        yield Input(placeholder="Search conversations")
        yield Footer()
Minimal().run()
"""


class Terminal:
    """A program running in a pseudo-terminal, with its screen output as plain text."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.started = time.perf_counter()
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(argv[0], argv, env)
        self.pid, self.fd = pid, fd
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.raw = bytearray()

    def read_until(self, predicate, timeout: float) -> float:  # noqa: ANN001
        """Seconds until predicate(plain text received since `since`) holds."""
        deadline = time.perf_counter() + timeout
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise TimeoutError("the expected output did not appear")
            ready, _, _ = select.select([self.fd], [], [], remaining)
            if ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:
                    raise TimeoutError("the program exited") from None
                self.raw += chunk
                if predicate(self.text()):
                    return time.perf_counter()

    def wait_for_bytes(self, needle: bytes, start: int, timeout: float) -> float:
        """When `needle` appeared in the output after byte `start` (cheap: no decoding while waiting)."""
        deadline = time.perf_counter() + timeout
        while needle not in self.raw[max(0, start - len(needle)) :]:
            remaining = deadline - time.perf_counter()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, remaining))
            if not ready:
                raise TimeoutError("the expected output did not appear")
            self.raw += os.read(self.fd, 65536)
        return time.perf_counter()

    def text(self, start: int = 0) -> str:
        return ANSI.sub("", self.raw[start:].decode("utf-8", "replace"))

    def write(self, data: str) -> None:
        os.write(self.fd, data.encode())

    def close(self) -> None:
        """Kill the program and everything it started (its model process too), and wait for them."""
        try:
            os.killpg(self.pid, signal.SIGKILL)  # pty.fork made it a session and group leader
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        os.close(self.fd)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(self.pid, 0)
            except OSError:
                return  # the whole group is gone
            time.sleep(0.05)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def first_frame(argv: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        term = Terminal(argv, env)
        try:
            shown = term.read_until(lambda text: "Search conversations" in text, timeout=60)
            times.append(shown - term.started)
        finally:
            term.close()
    return times


def key_latency(env: dict[str, str], keys: int, streaming: bool, question: str) -> list[float]:
    term = Terminal([assistant_bin(), "chat"], env)
    latencies = []
    try:
        term.read_until(lambda text: "last reply" in text, timeout=600)  # the model is loaded
        time.sleep(0.5)
        if streaming:
            term.write("\x0e")  # ctrl+n
            time.sleep(0.3)
            term.write(question)
            time.sleep(0.5)
            term.write("\r")
            term.read_until(lambda text: "replying" in text, timeout=60)
            time.sleep(0.5)
        for _ in range(keys):
            mark = len(term.raw)
            sent = time.perf_counter()
            term.write(MARK)
            shown = term.wait_for_bytes(MARK.encode(), mark, timeout=10)
            latencies.append(shown - sent)
            time.sleep(0.05)
        if streaming:
            term.write("\x1b")  # Esc: stops the reply if it is still streaming
            time.sleep(1.0)
    finally:
        term.close()
    if streaming:
        import sqlite3

        with sqlite3.connect(Path(env["ASSISTANT_DATA_DIR"]) / "assistant.db") as db:
            (reason,) = db.execute("SELECT finish_reason FROM messages WHERE role = 'assistant' ORDER BY id DESC").fetchone()
        still = reason == "cancelled"
        print(f"  the reply was still streaming after the last key press: {'yes' if still else 'NO'} ({reason})")
    return latencies


def key_latency_during_replies(env: dict[str, str], questions: list[str]) -> list[float]:
    """Keys typed while the demo model streams its (real-length) replies to sample questions.

    Only keys sent between a question being stored and its reply being stored count.
    """
    import sqlite3
    from datetime import datetime

    term = Terminal([assistant_bin(), "chat"], env)
    samples: list[tuple[float, float]] = []
    try:
        term.read_until(lambda text: "last reply" in text, timeout=600)
        time.sleep(0.5)
        for question in questions:
            term.write("\x0e")  # ctrl+n: each question in a new conversation, as support chats go
            time.sleep(0.3)
            term.write(question)  # typed (here: pasted) first; what is timed starts with Enter
            time.sleep(0.5)
            term.write("\r")
            time.sleep(0.03)
            typed = 0
            until = time.perf_counter() + 0.4
            while time.perf_counter() < until:
                mark, wall, sent = len(term.raw), time.time(), time.perf_counter()
                term.write(MARK)
                typed += 1
                shown = term.wait_for_bytes(MARK.encode(), mark, timeout=10)
                samples.append((wall, shown - sent))
                time.sleep(0.02)
            time.sleep(1.5)  # the reply ends
            term.write("\x7f" * typed)
            time.sleep(0.3)
    finally:
        term.close()

    def moment(stamp: str) -> float:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()

    with sqlite3.connect(Path(env["ASSISTANT_DATA_DIR"]) / "assistant.db") as db:
        rows = db.execute(
            "SELECT q.created_at, a.created_at FROM messages a JOIN messages q ON a.parent_id = q.id"
            " WHERE a.role = 'assistant' AND a.model != 'imported'"
        ).fetchall()
    windows = [(moment(start), moment(end)) for start, end in rows]
    return [latency for wall, latency in samples if any(start <= wall <= end for start, end in windows)]


def assistant_bin() -> str:
    found = shutil.which("assistant") or str(Path(sys.executable).with_name("assistant"))
    return found


def model_speed(model_dir: Path, questions: list[str]) -> dict[str, list[float]]:
    import torch

    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    backend = load_local_backend(ModelChoice(model_dir, "assistant-demo", "demo", is_demo=True))
    params = GenerationParams(max_new_tokens=200, temperature=0.0)
    ttft, rate, plain_rate = [], [], []
    list(backend.stream([ChatMessage("user", "warm up")], params))
    for question in questions:
        reply = backend.stream([ChatMessage("user", question)], params)
        list(reply)
        ttft.append(reply.stats.ttft_ms)
        if reply.stats.tokens_per_s:
            rate.append(reply.stats.tokens_per_s)
        ids = torch.tensor([backend.encode([ChatMessage("user", question)], 200)])
        started = time.perf_counter()
        with torch.inference_mode():
            out = backend.model.generate(
                ids, max_new_tokens=200, do_sample=False, eos_token_id=backend._stop_ids, pad_token_id=backend._pad_id
            )
        elapsed = time.perf_counter() - started
        plain_rate.append((out.shape[1] - ids.shape[1]) / elapsed)
    return {"ttft_ms": ttft, "tokens_per_s": rate, "plain_tokens_per_s": plain_rate}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts to time")
    parser.add_argument("--keys", type=int, default=40, help="key presses to time in each mode")
    parser.add_argument("--recipe", default="demo", help="demo model recipe (demo, or tiny for a quick check)")
    parser.add_argument("--data-dir", type=Path, help="reuse a data dir (its built demo model)")
    args = parser.parse_args()

    from assistant.logs import quiet_libraries, setup_logging

    quiet_libraries()
    setup_logging(None)
    from assistant.demo.build import endless_copy, ensure_demo_model
    from assistant.demo.samples import load_samples, sample_files

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-chat-"))
    print(f"data dir: {data_dir}")
    model_dir = ensure_demo_model(data_dir / "models", recipe=args.recipe)
    base_env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLS),
        "LINES": str(ROWS),
        "ASSISTANT_USER": "bench",
        "ASSISTANT_MODEL": str(model_dir),
        "ASSISTANT_TEMPERATURE": "0",
        "HF_HUB_OFFLINE": "1",
    }
    base_env.pop("TEXTUAL", None)

    def session(name: str, **extra: str) -> dict[str, str]:
        """A data dir of its own, its log holding the 200 sample conversations (as a user's would)."""
        from assistant.formats import parse_import_file
        from assistant.store import Store

        directory = data_dir / "runs" / name
        shutil.rmtree(directory, ignore_errors=True)
        store = Store.open(directory / "assistant.db")
        for file in sample_files():
            store.import_conversations(parse_import_file(file), user="bench", default_system_prompt="")
        store.close()
        return {**base_env, "ASSISTANT_DATA_DIR": str(directory), **extra}

    print("\n1. cold start to first frame (model loading in the background; 200 conversations in the log)")
    start_env = session("start")
    ours = first_frame([assistant_bin(), "chat"], start_env, args.runs)
    minimal = first_frame([sys.executable, "-c", MINIMAL_APP], start_env, args.runs)
    print(f"  assistant chat: median {statistics.median(ours):.3f} s, max {max(ours):.3f} s  {[round(t, 3) for t in ours]}")
    print(f"  minimal Textual app (baseline): median {statistics.median(minimal):.3f} s  {[round(t, 3) for t in minimal]}")
    print(f"  ratio: {statistics.median(ours) / statistics.median(minimal):.2f}x  (target: first frame <= 1.0 s)")

    print("\n2. demo model on CPU (greedy, 200 new tokens at most)")
    questions = [c[0]["content"] for c in load_samples()[::20]]
    speed = model_speed(model_dir, questions)
    print(f"  time to first token: median {statistics.median(speed['ttft_ms']):.1f} ms, "
          f"p95 {percentile(speed['ttft_ms'], 0.95):.1f} ms over {len(questions)} questions")
    print(f"  decode: median {statistics.median(speed['tokens_per_s']):.1f} tokens/s (streaming engine)")
    print(f"  plain model.generate (baseline): median {statistics.median(speed['plain_tokens_per_s']):.1f} tokens/s; "
          f"ratio {statistics.median(speed['tokens_per_s']) / statistics.median(speed['plain_tokens_per_s']):.2f}x")

    print("\n3. key press to screen")
    idle = key_latency(session("idle"), args.keys, streaming=False, question="")
    replies = key_latency_during_replies(session("replies"), [c[0]["content"] for c in load_samples()[1::10]])
    endless = endless_copy(model_dir, data_dir / "models" / "endless-demo")
    stress_env = session("stress", ASSISTANT_MODEL=str(endless), ASSISTANT_MAX_NEW_TOKENS="4000")
    stress = key_latency(stress_env, args.keys, streaming=True, question=questions[0])
    rows = (
        ("idle (baseline)", idle),
        ("while the demo model streams its replies to sample questions", replies),
        ("stress: one reply that never ends (end-of-turn suppressed), thousands of characters", stress),
    )
    for name, values in rows:
        ms = [v * 1000 for v in values]
        print(f"  {name}: p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, "
              f"max {max(ms):.1f} ms over {len(ms)} keys")
    print(f"  ratio p95 streaming sample replies / idle: {percentile(replies, 0.95) / percentile(idle, 0.95):.2f}x "
          "(target: p95 <= 50 ms while streaming)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
