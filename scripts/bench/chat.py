"""Chat benchmarks: cold start to first frame, the demo model's speed, key-press latency while streaming.

    python scripts/bench/chat.py [--runs 5] [--keys 40] [--recipe demo]
    python scripts/bench/chat.py --speed-only [--model MODEL_DIR --model-name NAME] [--repeats 3] [--questions 10] [--max-new-tokens 200]

Runs the real `assistant chat` in a pseudo-terminal (120x40) with a fresh data dir, so what is timed
is what a user sees: bytes on the terminal.

1. Cold start: from spawning `assistant chat` to the first frame (the conversation list drawn), with the
   model still loading in the background. Baseline: a minimal Textual app started the same way.
2. The demo model on CPU (and with --model, another one: SmolLM2-135M-Instruct as safetensors): time to
   first token and decode tokens/s over sample questions through the engine the app uses (streaming,
   generation in a thread); baseline: plain `model.generate` on the same model and questions, the two
   alternated, several repetitions, medians and spread (`model_speed`). Target: engine >= 0.95x plain
   on both. `--speed-only` runs only this part.
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


def model_speed(model_dir: Path, name: str, questions: list[str], repeats: int, max_new_tokens: int) -> dict:
    """The streaming engine against plain `model.generate` on the same model and questions, alternated.

    Each question, `repeats` times, once each way; which goes first alternates, so that load from the
    other users of a shared machine falls on both. Both sides are timed from the messages: the
    engine from `backend.stream` (its encoding included) to its first text piece; plain from
    `tokenizer.apply_chat_template` to the end of a `generate` of one new token. Decode tokens/s:
    (tokens - 1) / seconds after the first, for the engine as `ReplyStats` counts them, for plain
    from a full `generate` less the one-token one.
    """
    import torch

    from assistant.engine.base import ChatMessage, GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice

    backend = load_local_backend(ModelChoice(model_dir, name, "bench", is_demo=name == "assistant-demo"))
    model, tokenizer = backend.model, backend.tokenizer
    params = GenerationParams(max_new_tokens=max_new_tokens, temperature=0.0)
    plain_kwargs = dict(do_sample=False, temperature=None, top_p=None, top_k=None,
                        eos_token_id=backend._stop_ids, pad_token_id=backend._pad_id)

    def engine(question: str) -> tuple[float, float | None, int]:
        started = time.perf_counter()
        reply = backend.stream([ChatMessage("user", question)], params)
        first = None
        for _ in reply:
            if first is None:
                first = time.perf_counter()
        return (first - started) * 1000, reply.stats.tokens_per_s, reply.stats.token_count

    def plain(question: str) -> tuple[float, float | None, int]:
        with torch.inference_mode():
            started = time.perf_counter()
            ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                                return_tensors="pt", return_dict=True)["input_ids"]
            model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=1, **plain_kwargs)
            first = time.perf_counter() - started
            started = time.perf_counter()
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, **plain_kwargs)
            whole = time.perf_counter() - started
        tokens = out.shape[1] - ids.shape[1]
        return first * 1000, (tokens - 1) / (whole - first) if tokens > 1 and whole > first else None, tokens

    engine("warm up"), plain("warm up")
    result: dict[str, list] = {"engine_ttft_ms": [], "engine_tokens_per_s": [], "engine_tokens": [],
                               "plain_ttft_ms": [], "plain_tokens_per_s": [], "plain_tokens": []}
    for repeat in range(repeats):
        for index, question in enumerate(questions):
            sides = (("engine", engine), ("plain", plain))
            for side, run in sides if (repeat + index) % 2 == 0 else sides[::-1]:
                ttft, rate, tokens = run(question)
                result[f"{side}_ttft_ms"].append(ttft)
                result[f"{side}_tokens"].append(tokens)
                if rate:
                    result[f"{side}_tokens_per_s"].append(rate)
    return result


def print_speed(speed: dict) -> None:
    def spread(values: list[float]) -> str:
        return (f"median {statistics.median(values):.1f}, p25 {percentile(values, 0.25):.1f}, "
                f"p75 {percentile(values, 0.75):.1f}, min {min(values):.1f}, max {max(values):.1f} (n={len(values)})")

    for side, label in (("engine", "streaming engine"), ("plain", "plain model.generate (baseline)")):
        print(f"  {label}:")
        print(f"    time to first token ms: {spread(speed[f'{side}_ttft_ms'])}")
        print(f"    decode tokens/s: {spread(speed[f'{side}_tokens_per_s'])}")
    same = sum(a == b for a, b in zip(speed["engine_tokens"], speed["plain_tokens"], strict=True))
    print(f"    replies of the same length both ways: {same} of {len(speed['engine_tokens'])}")
    ttft = statistics.median(speed["plain_ttft_ms"]) / statistics.median(speed["engine_ttft_ms"])
    rate = statistics.median(speed["engine_tokens_per_s"]) / statistics.median(speed["plain_tokens_per_s"])
    print(f"  ratio engine / plain (medians; >= 1 is the engine as fast or faster; target >= 0.95x): "
          f"time to first token {ttft:.2f}x (plain ms / engine ms), decode {rate:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="cold starts to time")
    parser.add_argument("--keys", type=int, default=40, help="key presses to time in each mode")
    parser.add_argument("--recipe", default="demo", help="demo model recipe (demo, or tiny for a quick check)")
    parser.add_argument("--data-dir", type=Path, help="reuse a data dir (its built demo model)")
    parser.add_argument("--speed-only", action="store_true", help="only part 2: engine against plain generate")
    parser.add_argument("--model", type=Path, help="part 2 on this model directory too (e.g. SmolLM2 as safetensors)")
    parser.add_argument("--model-name", help="its name in the output (default: the directory's name)")
    parser.add_argument("--repeats", type=int, default=3, help="part 2: times each question is asked each way")
    parser.add_argument("--questions", type=int, default=10, help="part 2: sample questions asked")
    parser.add_argument("--max-new-tokens", type=int, default=200, help="part 2: new tokens at most (greedy)")
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

    if not args.speed_only:
        print("\n1. cold start to first frame (model loading in the background; 200 conversations in the log)")
        start_env = session("start")
        ours = first_frame([assistant_bin(), "chat"], start_env, args.runs)
        minimal = first_frame([sys.executable, "-c", MINIMAL_APP], start_env, args.runs)
        print(f"  assistant chat: median {statistics.median(ours):.3f} s, max {max(ours):.3f} s  {[round(t, 3) for t in ours]}")
        print(f"  minimal Textual app (baseline): median {statistics.median(minimal):.3f} s  {[round(t, 3) for t in minimal]}")
        print(f"  ratio: {statistics.median(ours) / statistics.median(minimal):.2f}x  (target: first frame <= 1.0 s)")

    import torch

    samples = load_samples()
    questions = [c[0]["content"] for c in samples[:: max(1, len(samples) // args.questions)]][: args.questions]
    models = [(model_dir, "assistant-demo")] + ([(args.model, args.model_name or args.model.name)] if args.model else [])
    for path, name in models:
        print(f"\n2. {name} on CPU, greedy, {args.max_new_tokens} new tokens at most, {len(questions)} sample questions "
              f"x {args.repeats} each way, alternated; torch threads {torch.get_num_threads()}")
        print_speed(model_speed(path, name, questions, args.repeats, args.max_new_tokens))
    if args.speed_only:
        return 0

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
