"""Chat latency (issue 5): time to first token and decode speed at batch 1, plain `model.generate`
against the engine `assistant chat` uses, next to the weights-over-bandwidth bound.

    python scripts/bench/chat_latency.py [--shape qwen2.5-1.5b|tiny] [--prompt-tokens 500]
        [--new-tokens 128] [--repeats 5] [--rank 16] [--json chat.json]

1. A randomly initialised model of the shape (scripts/bench/shapes.py, the demo tokenizer) loaded
   the way `assistant chat` loads it (`load_local_backend`: 4-bit NF4 with bf16 compute on CUDA,
   fp32 on CPU), then a random rank --rank all-linear LoRA adapter, published with its checksums,
   applied unmerged with `LocalBackend.swap_adapter`.
2. Prompt: one user message of synthetic support-chat text whose chat-encoded length is
   --prompt-tokens (within a few tokens; the exact count is printed).
3. Engine: `LocalBackend.stream` greedy, --new-tokens at most (a random model may stop earlier at an
   end-of-turn token; the count is reported): its own ReplyStats, TTFT (request to first token) and
   decode tokens/s ((tokens - 1) / time after the first).
   Plain: `model.generate` on the same peft model, greedy: TTFT = a generate of 1 new token;
   decode tokens/s = (N - 1) / (time of N tokens - time of 1), with min_new_tokens = N.
   One warm-up of each first; medians of --repeats; CUDA synchronised before each clock read.
4. Bound: the model's weight bytes (parameters and buffers as stored: packed 4-bit on CUDA) divided
   into the memory bandwidth of a large tensor copy measured in the same run: the most tokens/s
   decoding at batch 1 could reach if it only streamed the weights once per token.

Targets (1.5B shape, H100): engine decode >= 4x plain generate, TTFT <= 50 ms.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import common


def prompt_message(backend, tokens: int):  # noqa: ANN001, ANN201
    """A user message whose chat-encoded prompt is `tokens` long, give or take the slice edges."""
    from assistant.engine.base import ChatMessage
    from synthetic import _pool_ids

    pool = _pool_ids(backend.tokenizer, 0, tokens + 1000)
    overhead = len(backend.encode([ChatMessage("user", "x")], 1)) - 1
    take = tokens - overhead
    for _ in range(5):
        text = backend.tokenizer.decode(pool[:take], skip_special_tokens=True)
        got = len(backend.encode([ChatMessage("user", text)], 1))
        if got == tokens:
            break
        take += tokens - got
    return ChatMessage("user", text), got


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="tiny")
    parser.add_argument("--prompt-tokens", type=int, default=500)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rank", type=int, default=16)
    parser.add_argument("--json", default="chat.json", help="file name under $OUT")
    args = parser.parse_args()

    import torch

    from assistant.adapters.registry import publish
    from assistant.engine.base import GenerationParams
    from assistant.engine.local import load_local_backend
    from assistant.engine.resolve import ModelChoice
    from swap import make_adapter

    common.quiet()
    model_dir = common.model_dir(args.shape)
    bandwidth = common.memory_bandwidth()
    with tempfile.TemporaryDirectory(prefix="bench-chat-latency-") as scratch:
        root = Path(scratch)
        adapter = publish(make_adapter(model_dir, root / "raw", 1, args.rank), root / "data", "v0001", {})
        backend = load_local_backend(ModelChoice(model_dir, args.shape, "local path"))
        backend.swap_adapter("v0001", adapter)
    model = backend.model
    weight_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    message, prompt_tokens = prompt_message(backend, args.prompt_tokens)

    params = GenerationParams(max_new_tokens=args.new_tokens, temperature=0.0)
    engine_ttft, engine_rate, engine_tokens = [], [], []
    for i in range(args.repeats + 1):
        reply = backend.stream([message], params)
        list(reply)
        if i == 0:
            continue  # warm-up
        engine_ttft.append(reply.stats.ttft_ms)
        engine_rate.append(reply.stats.tokens_per_s or 0.0)
        engine_tokens.append(reply.stats.token_count)

    ids = torch.tensor([backend.encode([message], args.new_tokens)], device=backend._device)
    common_kwargs = dict(attention_mask=torch.ones_like(ids), do_sample=False, temperature=None, top_p=None,
                         top_k=None, pad_token_id=backend._pad_id, eos_token_id=backend._stop_ids)

    def timed_generate(new: int) -> float:
        common.sync()
        started = time.perf_counter()
        with torch.inference_mode():
            model.generate(ids, max_new_tokens=new, min_new_tokens=new, **common_kwargs)
        common.sync()
        return time.perf_counter() - started

    timed_generate(1), timed_generate(args.new_tokens)  # warm-up
    plain_ttft, plain_rate = [], []
    for _ in range(args.repeats):
        first = timed_generate(1)
        full = timed_generate(args.new_tokens)
        plain_ttft.append(first * 1000)
        plain_rate.append((args.new_tokens - 1) / max(1e-9, full - first))

    bound = bandwidth / weight_bytes
    result = {
        "bench": "chat_latency", "device": common.device_name(), "shape": args.shape, "precision": backend.identity.precision,
        "adapter_rank": args.rank, "prompt_tokens": prompt_tokens, "new_tokens": args.new_tokens, "repeats": args.repeats,
        "engine": {"ttft_ms_median": statistics.median(engine_ttft), "tokens_per_s_median": statistics.median(engine_rate),
                   "tokens_generated": engine_tokens, "ttft_ms": engine_ttft, "tokens_per_s": engine_rate},
        "plain_generate": {"ttft_ms_median": statistics.median(plain_ttft), "tokens_per_s_median": statistics.median(plain_rate),
                           "ttft_ms": plain_ttft, "tokens_per_s": plain_rate},
        "weight_bytes": weight_bytes, "bandwidth_bytes_per_s": bandwidth, "bound_tokens_per_s": bound,
    }
    result["ratio_engine_over_plain_decode"] = result["engine"]["tokens_per_s_median"] / result["plain_generate"]["tokens_per_s_median"]

    print(f"device: {common.device_name()}; shape {args.shape} ({backend.identity.precision}), unmerged rank-{args.rank} "
          f"all-linear adapter; prompt {prompt_tokens} tokens, {args.new_tokens} new tokens at most, greedy, batch 1")
    print(f"{'measure':<48} {'engine':>10} {'plain':>10}")
    print(f"{'time to first token, median (ms)':<48} {result['engine']['ttft_ms_median']:>10.1f} {result['plain_generate']['ttft_ms_median']:>10.1f}")
    print(f"{'decode tokens/s, median':<48} {result['engine']['tokens_per_s_median']:>10.1f} {result['plain_generate']['tokens_per_s_median']:>10.1f}")
    print(f"engine tokens generated per reply: {engine_tokens}")
    print(f"ratio engine / plain decode: {result['ratio_engine_over_plain_decode']:.2f}x (target >= 4x); TTFT target <= 50 ms")
    print(f"bound: {weight_bytes / 2**20:.1f} MiB of weights / {bandwidth / 1e9:.1f} GB/s copy bandwidth = {bound:.0f} tokens/s")
    common.write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
