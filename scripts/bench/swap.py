"""Hot-swap benchmark: how long a running chat takes to switch adapter versions, and whether memory
stays flat, against the alternative of restarting (reloading the base model with the new adapter).

    python scripts/bench/swap.py [--swaps 100] [--recipe demo|tiny] [--shape qwen2.5-1.5b] [--rank 16] [--json swap.json]

1. Builds (or reuses) the demo model of the recipe (or, with --shape, a randomly initialised model of
   a real shape, with the demo tokenizer, cached under $BENCH_CACHE by scripts/bench/common.py), and
   two LoRA adapters of rank --rank on all linear layers with random weights (peft,
   `init_lora_weights=False`: a trained adapter loads and validates the same way), published with
   meta.json checksums.
2. Swap: `LocalBackend.swap_adapter` alternating between the two, --swaps times: checksum verify, load
   under a new name, validation (every weight loaded, finite probe forward pass), switch, drop the old.
   Median, p95 and p99 latency; RSS after the first 10 swaps and after the last; on CUDA also
   torch.cuda.memory_allocated after the first swap and after the last (target: within 1%).
3. Baseline, in the same run: a cold load of base model + adapter (`load_local_backend`), 5 times.

Prints one table (and writes $OUT/<--json> when OUT is set); record the results in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_adapter(model_dir: Path, out: Path, seed: int, rank: int) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(
        model, LoraConfig(r=rank, lora_alpha=2 * rank, target_modules="all-linear", init_lora_weights=False)
    )
    peft_model.save_pretrained(out, safe_serialization=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--swaps", type=int, default=100)
    parser.add_argument("--recipe", default="demo")
    parser.add_argument("--rank", type=int, default=16)
    from shapes import SHAPES

    parser.add_argument("--shape", choices=sorted(SHAPES), help="a random model of this real shape instead of the demo")
    parser.add_argument("--json", default="swap.json", help="file name under $OUT")
    parser.add_argument("--models-dir", type=Path, default=Path("conversations/models"), help="where demo models are cached")
    args = parser.parse_args()

    from assistant.adapters.registry import publish
    from assistant.demo.build import ensure_demo_model
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice
    from assistant.logs import quiet_libraries

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="bench-swap-") as scratch:
        root = Path(scratch)
        if args.shape:  # a random model of the shape with the demo tokenizer, cached (scripts/bench/common.py)
            import common

            model_dir = common.model_dir(args.shape)
        else:
            model_dir = ensure_demo_model(args.models_dir, recipe=args.recipe)  # built once, then reused
        versions = []
        for number in (1, 2):
            raw = make_adapter(model_dir, root / f"raw{number}", number, args.rank)
            versions.append((f"v000{number}", publish(raw, root / "data", f"v000{number}", {})))
        size_kib = (versions[0][1] / "adapter_model.safetensors").stat().st_size / 1024
        choice = ModelChoice(model_dir, model_dir.name, "local path", is_demo=True)

        cold = []
        for _ in range(5):
            started = time.perf_counter()
            load_local_backend(choice, adapter=str(versions[0][1]))
            cold.append(time.perf_counter() - started)

        backend = load_local_backend(choice)
        import torch

        cuda = torch.cuda.is_available()
        times, rss, gpu = [], [], []
        for i in range(args.swaps):
            version, path = versions[i % 2]
            started = time.perf_counter()
            backend.swap_adapter(version, path)
            if cuda:
                torch.cuda.synchronize()
            times.append(time.perf_counter() - started)
            if cuda and i == 0:
                gpu.append(torch.cuda.memory_allocated())
            if i == 9:
                rss.append(rss_mib())
        rss.append(rss_mib())
        if cuda:
            gpu.append(torch.cuda.memory_allocated())
        params = sum(p.numel() for p in backend.model.parameters())

    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    print(f"model: {args.shape or 'demo recipe ' + repr(args.recipe)} ({params:,} parameters); adapter: rank {args.rank}, all-linear, {size_kib:.0f} KiB")
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'swap latency, median (ms)':<44} {statistics.median(times) * 1000:>12.1f}")
    print(f"{'swap latency, p95 (ms)':<44} {p95 * 1000:>12.1f}")
    print(f"{'swap latency, p99 (ms)':<44} {p99 * 1000:>12.1f}")
    print(f"{'baseline: cold load base + adapter, median (ms)':<44} {statistics.median(cold) * 1000:>12.1f}")
    print(f"{'ratio baseline / swap':<44} {statistics.median(cold) / statistics.median(times):>12.1f}")
    print(f"{'RSS after 10 swaps (MiB)':<44} {rss[0]:>12.1f}")
    print(f"{f'RSS after {args.swaps} swaps (MiB)':<44} {rss[1]:>12.1f}")
    print(f"{'parameters after the last swap':<44} {params:>12,}")
    if gpu:
        print(f"{'GPU memory allocated after swap 1 (MiB)':<44} {gpu[0] / 2**20:>12.1f}")
        print(f"{f'GPU memory allocated after {args.swaps} swaps (MiB)':<44} {gpu[1] / 2**20:>12.1f}")
        print(f"{'GPU memory growth after the first swap (%)':<44} {100 * (gpu[1] / gpu[0] - 1):>12.2f}")
    out = os.environ.get("OUT")
    if out:
        import json

        result = {
            "bench": "swap", "shape": args.shape, "recipe": args.recipe, "rank": args.rank, "swaps": args.swaps,
            "parameters": params, "adapter_kib": size_kib, "swap_ms_median": statistics.median(times) * 1000,
            "swap_ms_p95": p95 * 1000, "swap_ms_p99": p99 * 1000, "cold_load_ms_median": statistics.median(cold) * 1000,
            "rss_mib_after_10": rss[0], "rss_mib_after_last": rss[1],
            "gpu_bytes_after_first": gpu[0] if gpu else None, "gpu_bytes_after_last": gpu[1] if gpu else None,
            "swap_ms": [t * 1000 for t in times],
        }
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / args.json).write_text(json.dumps(result, indent=2), encoding="utf-8")
        print(f"wrote {Path(out) / args.json}")


if __name__ == "__main__":
    main()
