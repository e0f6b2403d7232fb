"""How long `assistant retrain` takes on a team's first few hundred approved rows, stage by stage.

A fresh data dir's database gets the 200 sample conversations imported as the team's own, every reply
rated up and approved (about 270 training rows; what a curator does with `assistant import` and
`assistant review`); then `retrain` runs as a user runs it and each stage is timed from its status
line: dataset snapshot, preflight, training (steps, seconds per step), the gate, publishing. The
sample replay is off by default (`sample_training = "off"`), so the rows are all the team's: with it
on, the imported samples would be dropped as duplicates of the replayed ones. `--distinct` imports them
with every question prefixed (so they are the team's own rows, as long as real ones) and turns the
replay on: a team's first few hundred rows beside the replayed samples, what a demo data dir trains.

    PYTHONPATH=. python scripts/bench/retrain_time.py                        # the demo model
    PYTHONPATH=. python scripts/bench/retrain_time.py --model DIR             # any local model (SmolLM2...)
    PYTHONPATH=. python scripts/bench/retrain_time.py --set 'epochs = 3'      # a config.toml line on top
    PYTHONPATH=. python scripts/bench/retrain_time.py --distinct              # 270 rows of its own + replay

Targets (issue 13): within 2 minutes on the demo model, within 10 on SmolLM2-135M, on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from assistant.logs import quiet_libraries, setup_logging
from scripts.bench.train_defaults import import_samples_approved

DEFAULT_MODELS = Path("/tmp/assistant-bench-models")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="A local model directory (default: the built-in demo model).")
    parser.add_argument("--models", type=Path, default=DEFAULT_MODELS, help="Where the demo model is built once and reused.")
    parser.add_argument("--data-dir", type=Path, help="A fresh data dir (default: a temporary one).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="A config.toml line.")
    parser.add_argument("--distinct", action="store_true",
                        help="Import the samples reworded (a prefix on every question) and replay the samples beside them.")
    parser.add_argument("--target", type=float, help="Seconds to meet (default: 120 for the demo model, 600 otherwise).")
    args = parser.parse_args()

    quiet_libraries()
    setup_logging(None)
    from assistant.settings import load_settings
    from assistant.store import Store
    from assistant.train.loop import Progress
    from assistant.train.retrain import Events, Options, retrain

    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="retrain-time-")) / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = ['user = "bench"', 'hub_model = ""', f'sample_training = "{"on" if args.distinct else "off"}"']
    if args.model is None:
        from assistant.demo.build import ensure_demo_model

        demo = ensure_demo_model(args.models, recipe="demo", seed=0)
        (data_dir / "models").mkdir(exist_ok=True)
        (data_dir / "models" / demo.name).symlink_to(demo)
        lines += ['model = ""', 'fallback_model = "demo"']
    else:
        lines.append(f'model = "{args.model}"')
    overridden = {line.split("=")[0].strip() for line in args.set}
    lines = [line for line in lines if line.split("=")[0].strip() not in overridden] + args.set
    (data_dir / "config.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    settings = load_settings(data_dir=data_dir, environ={}).settings

    store = Store.open(settings.db_path)
    conversations, approved = import_samples_approved(store, settings.system_prompt, "Team:" if args.distinct else "")
    print(f"imported {conversations} conversations, approved {approved} replies", flush=True)

    stages: list[tuple[str, float]] = []
    steps: list[tuple[int, int, float]] = []

    def status(text: str) -> None:
        stages.append((text, time.perf_counter()))
        print(f"  {time.perf_counter() - started:6.1f} s  {text}", file=sys.stderr, flush=True)

    def progress(p: Progress) -> None:
        steps.append((p.step, p.total, time.perf_counter()))

    started = time.perf_counter()
    result = retrain(settings, store, Options(), Events(status=status, progress=progress))
    total = time.perf_counter() - started
    store.close()

    named = {"Building the dataset snapshot": "dataset", "Preflight": "preflight", "Training": "training"}
    def stage(text: str) -> str | None:
        if text.startswith("Training"):
            return "training" if text == "Training (SFT)" or text == "Training" else "preference"
        return named.get(text, "gate" if text.startswith("Eval gate") else None)

    marks = [(stage(text), at) for text, at in stages]
    marks = [(name, at) for name, at in marks if name] + [("publish", time.perf_counter())]
    pre = result.preflight or {}
    print(f"model: {settings.model or 'demo'}; {pre.get('train_examples')} train, {pre.get('eval_examples')} eval rows")
    for (name, at), (_, following) in zip(marks, marks[1:], strict=False):
        print(f"  {name:<10} {following - at:6.1f} s")
    if steps:
        first, last = steps[0], steps[-1]
        per_step = (last[2] - first[2]) / max(1, last[0] - first[0])
        print(f"  steps: {last[0]}/{last[1]}, {per_step:.3f} s per step")
    target = args.target or (120.0 if args.model is None else 600.0)
    print(f"retrain: {result.status} in {total:.1f} s (target {target:.0f} s: {'met' if total <= target else 'not met'}): {result.message}")
    return 0 if total <= target else 1


if __name__ == "__main__":
    sys.exit(main())
