"""Chat benchmarks: cold start to first frame, the demo model's speed, key-press latency while streaming.

    python scripts/bench/chat.py [--runs 5] [--keys 40] [--recipe demo]

Runs the real `assistant chat` in a pseudo-terminal (120x40) with a fresh data dir, so what is timed
is what a user sees: bytes on the terminal.

1. Cold start: from spawning `assistant chat` to the first frame (the conversation list drawn), with the
   model still loading in the background. Baseline: a minimal Textual app started the same way.
2. The demo model on CPU: time to first token and decode tokens/s over sample questions, through the
   engine the app uses (streaming, in a thread); baseline: plain `model.generate` on the same prompts.
3. Key press to screen while a reply streams: a character typed into the input while the demo model
   streams a long reply (its end-of-turn token suppressed so the reply runs to max_new_tokens), timed
   until the character appears on the terminal; baseline: the same with no reply streaming.

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
        self.raw = b""

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

    def text(self, start: int = 0) -> str:
        return ANSI.sub("", self.raw[start:].decode("utf-8", "replace"))

    def write(self, data: str) -> None:
        os.write(self.fd, data.encode())

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except OSError:
            pass
        os.close(self.fd)


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
            term.write(question + "\r")
            term.read_until(lambda text: "replying" in text, timeout=60)
            time.sleep(0.5)
        for _ in range(keys):
            mark = len(term.raw)
            sent = time.perf_counter()
            term.write(MARK)
            shown = term.read_until(lambda text, m=mark: MARK in term.text(m), timeout=10)
            latencies.append(shown - sent)
            time.sleep(0.05)
        if streaming and "replying" not in term.text(len(term.raw) - 4000 if len(term.raw) > 4000 else 0):
            print("  note: the reply may have ended before the last key press", file=sys.stderr)
    finally:
        term.close()
    return latencies


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
    from assistant.demo.samples import load_samples

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="bench-chat-"))
    print(f"data dir: {data_dir}")
    model_dir = ensure_demo_model(data_dir / "models", recipe=args.recipe)
    env = {
        **os.environ,
        "TERM": "xterm-256color",
        "COLUMNS": str(COLS),
        "LINES": str(ROWS),
        "ASSISTANT_DATA_DIR": str(data_dir),
        "ASSISTANT_DEMO_RECIPE": args.recipe,
        "ASSISTANT_HUB_MODEL": "",
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("TEXTUAL", None)

    print("\n1. cold start to first frame (model loading in the background)")
    ours = first_frame([assistant_bin(), "chat"], env, args.runs)
    minimal = first_frame([sys.executable, "-c", MINIMAL_APP], env, args.runs)
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
    endless = endless_copy(model_dir, data_dir / "models" / "endless-demo")
    key_env = {**env, "ASSISTANT_MODEL": str(endless), "ASSISTANT_MAX_NEW_TOKENS": "1900", "ASSISTANT_TEMPERATURE": "0"}
    idle = key_latency(key_env, args.keys, streaming=False, question="")
    busy = key_latency(key_env, args.keys, streaming=True, question=questions[0])
    for name, values in (("idle (baseline)", idle), ("while streaming", busy)):
        ms = [v * 1000 for v in values]
        print(f"  {name}: p50 {statistics.median(ms):.1f} ms, p95 {percentile(ms, 0.95):.1f} ms, max {max(ms):.1f} ms over {len(ms)} keys")
    print(f"  ratio p95 streaming/idle: {percentile(busy, 0.95) / percentile(idle, 0.95):.2f}x  (target: p95 <= 50 ms while streaming)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
