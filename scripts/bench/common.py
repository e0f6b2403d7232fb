"""Shared by the GPU performance benches (issue 5): models of real shapes built once and cached,
the device's own matmul rate and memory bandwidth measured in the same run, peak memory, results
written as JSON under $OUT.

Timing method: warm up first, synchronize on CUDA before reading clocks, medians of repeats.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

DEFAULT_CACHE = Path(os.environ.get("BENCH_CACHE", "/tmp/assistant-bench-models"))


def on_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def demo_tokenizer_dir(cache: Path = DEFAULT_CACHE) -> Path:
    """The built-in demo model's tokenizer (byte-level BPE, 2048 tokens, trained in seconds on the
    sample conversations, its ChatML template with `{% generation %}` marks), saved alone under
    `cache`: the demo model itself is not needed (nor trained) for the benches."""
    from assistant.demo.build import RECIPES, train_tokenizer
    from assistant.demo.samples import load_samples

    out = cache / "demo-tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    texts = [turn["content"] for conversation in load_samples() for turn in conversation]
    tokenizer = train_tokenizer(texts, RECIPES["demo"].vocab_size)
    tokenizer.model_max_length = 1 << 20  # the models' own contexts apply; no length warnings
    partial = cache / "demo-tokenizer.partial"
    tokenizer.save_pretrained(partial)
    os.replace(partial, out)
    return out


def model_dir(shape: str, cache: Path = DEFAULT_CACHE) -> Path:
    """A randomly initialised model of `shape` (shapes.py: SHAPES) with the demo
    tokenizer, written once under `cache` and reused by every bench of the run."""
    from shapes import SHAPES, build_random_model

    out = cache / shape
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    partial = cache / f"{shape}.partial"
    import shutil

    shutil.rmtree(partial, ignore_errors=True)
    started = time.perf_counter()
    build_random_model(SHAPES[shape], demo_tokenizer_dir(), partial)
    os.replace(partial, out)
    print(f"built random {shape} in {time.perf_counter() - started:.1f} s -> {out}", file=sys.stderr)
    return out


def matmul_rate(repeats: int = 10) -> dict[str, Any]:
    """The device's own dense matmul rate, in FLOP/s: bf16 8192^3 on CUDA, fp32 1024^3 on CPU.
    Median of `repeats` after warm-up."""
    import torch

    if torch.cuda.is_available():
        n, dtype, device = 8192, torch.bfloat16, "cuda"
    else:
        n, dtype, device = 1024, torch.float32, "cpu"
    a = torch.randn(n, n, dtype=dtype, device=device)
    b = torch.randn(n, n, dtype=dtype, device=device)
    for _ in range(3):
        a @ b
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - started)
    flops = 2 * n**3 / statistics.median(times)
    return {"flops": flops, "dtype": str(dtype).removeprefix("torch."), "n": n, "device": device}


def memory_bandwidth(repeats: int = 10) -> float:
    """Bytes/s of a large tensor copy (read + write counted): 1 GiB on CUDA, 256 MiB on CPU."""
    import torch

    cuda = torch.cuda.is_available()
    size = (1 << 30) if cuda else (256 << 20)
    src = torch.empty(size, dtype=torch.uint8, device="cuda" if cuda else "cpu").fill_(1)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    sync()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        dst.copy_(src)
        sync()
        times.append(time.perf_counter() - started)
    return 2 * size / statistics.median(times)


def peak_memory_bytes() -> int:
    """torch.cuda.max_memory_allocated on CUDA; else this process's peak RSS."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def write_json(name: str, data: dict[str, Any]) -> None:
    """$OUT/<name> when OUT is set."""
    out = os.environ.get("OUT")
    if out:
        path = Path(out) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
        print(f"wrote {path}")


def quiet() -> None:
    from assistant.logs import quiet_libraries

    quiet_libraries()
