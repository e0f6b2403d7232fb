"""Time and peak memory of the preference stage against the SFT stage, on the same data (issue 14).

A fresh data dir gets the 200 sample conversations as the team's own, every reply rated up and
approved (about 270 SFT rows); in every `--every`th conversation the first reply also gets a
regenerated sibling, another conversation's answer, rated down: a DPO pair (sibling up against
down) and a thumbs-down KTO row each. One snapshot is built and trained as `assistant retrain`
trains it: the SFT stage (`train.loop.train_adapter`), then each preference stage
(`train.preference.train_preference`) continuing the SFT adapter with it as the reference. Each
stage's wall time and peak resident memory (sampled every 50 ms) are printed, and the gate's
preference scores on the held-out pairs (`dpo_eval.jsonl`) of the SFT adapter and of each stage's.

    PYTHONPATH=. python scripts/bench/preference.py                 # the demo model, on this machine
    PYTHONPATH=. python scripts/bench/preference.py --model DIR     # any local model
    PYTHONPATH=. python scripts/bench/preference.py --shape qwen2.5-0.5b --max-steps 40   # built in code (GPU)
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.logs import quiet_libraries, setup_logging

DEFAULT_MODELS = Path("/tmp/assistant-bench-models")


class PeakRSS:
    """The process's peak resident set size while a block runs, sampled (other stages' peaks do not count)."""

    def __init__(self, every_s: float = 0.05) -> None:
        self.every_s, self.peak, self._stop = every_s, 0, threading.Event()

    @staticmethod
    def now() -> int:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRSS:
        self.peak = self.now()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def timed(label: str, run: Callable[[], Any]) -> tuple[Any, float, int]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    with PeakRSS() as rss:
        started = time.perf_counter()
        out = run()
        elapsed = time.perf_counter() - started
    gpu = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    steps = getattr(out, "steps", 0)
    print(f"{label:<16} {elapsed:7.1f} s  {steps:4d} steps  {elapsed / max(1, steps):6.3f} s/step  "
          f"peak RSS {rss.peak / 2**20:7.0f} MiB" + (f"  peak GPU {gpu / 2**20:7.0f} MiB" if gpu else ""), flush=True)
    return out, elapsed, rss.peak


def add_siblings(store, every: int) -> int:  # noqa: ANN001
    """In every `every`th conversation, a regenerated sibling of the first reply (the next conversation's
    answer) rated down: the pairs and thumbs down of a team that regenerates bad replies."""
    conversations = sorted(c.id for c in store.conversations(limit=100_000))
    firsts = []
    for cid in conversations:
        thread = store.thread(cid)
        reply = next((m for m in thread if m.role == "assistant"), None)
        if reply is not None:
            firsts.append(reply)
    added = 0
    for i in range(0, len(firsts), every):
        reply, other = firsts[i], firsts[(i + 1) % len(firsts)]
        sibling = store.add_message(reply.conversation_id, "assistant", other.content, parent_id=reply.parent_id)
        store.rate(sibling.id, "bench", -1)
        added += 1
    return added


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A local model directory (default: the built-in demo model).")
    parser.add_argument("--shape", help="A model built in code from a published shape (scripts/bench/shapes.py).")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="Where the demo model is built once.")
    parser.add_argument("--every", type=int, default=2, help="A rated-down sibling in every this many conversations.")
    parser.add_argument("--kinds", default="dpo,kto", help="The preference stages to time (comma-separated).")
    parser.add_argument("--max-steps", type=int, default=0, help="Cap every stage at this many steps (0: no cap).")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    import torch

    from assistant.data.builder import BuildPolicy
    from assistant.data.snapshot import build_snapshot
    from assistant.data.tokens import ChatTokenizer
    from assistant.settings import load_settings
    from assistant.store import Store
    from assistant.train.config import TrainConfig
    from assistant.train.gate import evaluate
    from assistant.train.loop import team_row_flags, train_adapter
    from assistant.train.preference import plan, train_preference
    from scripts.bench.train_defaults import import_samples_approved

    root = Path(tempfile.mkdtemp(prefix="preference-bench-"))
    is_demo = args.model is None and args.shape is None
    from assistant.demo.build import ensure_demo_model

    if args.model:
        model = args.model
    else:
        model = ensure_demo_model(args.models, recipe="demo", seed=0)
    if args.shape:  # random weights of a published shape, with the demo model's tokenizer: times, not quality
        from scripts.bench.shapes import SHAPES, build_random_model

        model = build_random_model(SHAPES[args.shape], model, root / args.shape)
    data_dir = root / "data"
    data_dir.mkdir()
    (data_dir / "config.toml").write_text(
        f'user = "bench"\nhub_model = ""\nsample_training = "off"\nmodel = "{model}"\nmax_steps = {args.max_steps}\n',
        encoding="utf-8",
    )
    settings = load_settings(data_dir=data_dir, environ={}).settings
    store = Store.open(settings.db_path)
    conversations, approved = import_samples_approved(store, settings.system_prompt)
    siblings = add_siblings(store, args.every)
    snapshot = build_snapshot(store, data_dir, BuildPolicy.from_settings(settings), ChatTokenizer.load(model, model.name),
                              user="bench")
    counts = snapshot.manifest["counts"]["rows"]
    print(f"model {model.name}; {conversations} conversations, {approved} approved, {siblings} siblings rated down; "
          f"rows: {counts}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{'CUDA ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'CPU'}", flush=True)

    on_cuda = torch.cuda.is_available()
    config = TrainConfig.from_settings(settings, is_demo=is_demo, model_name=model.name).sized(
        sum(team_row_flags(snapshot.path)))
    sft, sft_s, sft_rss = timed("SFT", lambda: train_adapter(model, snapshot.path, root / "run", config, on_cuda=on_cuda))
    results = {}
    for kind in [k for k in args.kinds.split(",") if k]:
        chosen = plan(kind, snapshot.path, min_pairs=1)
        out, seconds, rss = timed(
            f"{kind.upper()} ({chosen.rows} rows)",
            lambda chosen=chosen, kind=kind: train_preference(
                model, snapshot.path, root / f"run-{kind}", config, chosen, on_cuda=on_cuda, start_from=sft.adapter_dir),
        )
        results[kind] = out
        print(f"  {kind.upper()} / SFT: time {seconds / sft_s:.2f}x, per step {seconds / max(1, out.steps) / (sft_s / max(1, sft.steps)):.2f}x, "
              f"peak RSS {rss / sft_rss:.2f}x", flush=True)
    for kind, out in results.items():
        report = evaluate(model, out.adapter_dir, ("sft", sft.adapter_dir), snapshot.path, [], on_cuda=on_cuda,
                          four_bit=settings.cpu_load_in_4bit, max_examples=settings.gate_max_examples,
                          max_length=settings.max_length, probes=[], system_prompt=settings.system_prompt)
        scores = report["scores"]
        line = "  ".join(
            f"{name} acc {scores[name]['preference']['pair_accuracy']:.3f} margin {scores[name]['preference']['pair_margin']:+.3f}"
            for name in ("base", "active", "candidate") if (scores[name].get("preference") or {}).get("pairs")
        )
        print(f"held-out pairs ({report['preference_rows']}, {report['preference_examples']}) after {kind.upper()}: "
              f"{line.replace('active', 'SFT').replace('candidate', kind.upper())}", flush=True)
    store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
