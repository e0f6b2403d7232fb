"""Serving benchmark: a team's chats answered by ONE vLLM model server against N in-process backends
(each chat its own model copy in its own process, as every `assistant chat` without a server does).

    python scripts/bench/serve.py [--chats 1,4,8,16] [--questions 4] [--max-new-tokens 128] [--recipe demo|tiny]
                                  [--shape qwen2.5-0.5b]
                                  [--loads 30] [--vllm "VLLM_ARGS"] [--quick] [--json serve.json]

1. The demo model of --recipe, built once and cached under $BENCH_CACHE (/tmp/assistant-bench-models),
   and a rank-16 all-linear LoRA adapter with random weights (peft), published naming it as its base.
2. Server: `assistant serve --model <dir> [-- --vllm]` (vLLM's CPU build) in a subprocess, ready when
   /health and /v1/models answer; a short warm-up reply per chat of the largest batch, all at once.
   For each N of --chats: N threads, one `RemoteBackend` each, each chat asking --questions sample
   questions in sequence (one growing conversation: the sample conversations' openers, the default
   system prompt, greedy, at most --max-new-tokens). Then --loads adapter loads under fresh names
   (`ServerAPI.load_adapter`, which lists the models first, as a promotion does), each unloaded after.
   The server is stopped with SIGTERM to `assistant serve`, which stops vLLM.
3. In-process, once the server is gone (one side runs at a time): for each N, N `ProcessBackend`
   workers started at once, a short warm-up reply each, the same chats, one thread per worker; closed.

Per side and N: aggregate tokens/s (tokens of all chats / wall time of the whole batch), time to
first token p50/p95 (from asking to the first text, as the chat sees it: queueing, HTTP or pipe
included) and the peak, sampled every 0.5 s during the batch, of the memory of every process
involved: RSS summed and PSS summed (shared pages counted once: the fair total), over the process
tree of `assistant serve` (its Python, vLLM's API server, EngineCore and worker) vs the N workers;
for the server also the growth from the smallest N. The chat app's own process (the Textual UI,
the store) is the same in both deployments and not counted; nor is this bench's process, where the
chats' clients run (their CPU is in both walls).

Then the issue's targets at 8 chats (else the largest N): (a) memory each added chat costs on the
server, (PSS at 8 - at 1) / 7, vs an in-process chat's, PSS at 8 / 8: at most 1/10; (b) server
aggregate tokens/s vs in-process: at least 2x; (c) adapter load p50: at most 100 ms.

Prints one table (and writes $OUT/<--json> when OUT is set), with the load average: on a shared
machine, numbers are only as good as the machine was idle.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import common  # noqa: E402  (scripts/bench/common.py)

START_TIMEOUT_S = 600.0
SAMPLE_EVERY_S = 0.5


def descendants(roots: list[int]) -> list[int]:
    """`roots` and every process below them (ppid links from /proc/*/stat)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_memory_mib(roots: list[int]) -> tuple[float, float]:
    """(RSS sum, PSS sum) in MiB over the trees of `roots` (smaps_rollup; VmRSS if it cannot be read)."""
    rss = pss = 0
    for pid in descendants(roots):
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:])
            rss, pss = rss + int(fields["Rss"].split()[0]), pss + int(fields["Pss"].split()[0])
        except (OSError, KeyError, ValueError):
            try:
                kib = int(Path(f"/proc/{pid}/status").read_text().split("VmRSS:", 1)[1].split()[0])
                rss, pss = rss + kib, pss + kib
            except (OSError, IndexError, ValueError):
                pass  # gone meanwhile
    return rss / 1024, pss / 1024


class PeakMemory(threading.Thread):
    """Samples the trees of `roots` every SAMPLE_EVERY_S until stopped; keeps the peak sums."""

    def __init__(self, roots: list[int]) -> None:
        super().__init__(daemon=True)
        self.roots, self.rss, self.pss = roots, 0.0, 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            rss, pss = tree_memory_mib(self.roots)
            self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
            if self.done.wait(SAMPLE_EVERY_S):
                return

    def stop(self) -> tuple[float, float]:
        self.done.set()
        self.join()
        rss, pss = tree_memory_mib(self.roots)
        return max(self.rss, rss), max(self.pss, pss)


def run_batch(backends: list, questions: list[str], per_chat: int, params, roots: list[int]) -> dict:  # noqa: ANN001
    """Every backend one chat in its own thread, all started together: tokens/s, TTFT, peak memory."""
    from assistant.engine.base import ChatMessage
    from assistant.settings import DEFAULT_SYSTEM_PROMPT

    ttfts, tokens, failures = [], [], []
    gate = threading.Barrier(len(backends) + 1)

    def chat(index: int, backend) -> None:  # noqa: ANN001
        messages = [ChatMessage("system", DEFAULT_SYSTEM_PROMPT)]
        gate.wait()
        try:
            for turn in range(per_chat):
                messages.append(ChatMessage("user", questions[(index * per_chat + turn) % len(questions)]))
                asked, first = time.perf_counter(), None
                reply = backend.stream(messages, params)
                for _ in reply:
                    first = first or time.perf_counter()
                ttfts.append(((first or time.perf_counter()) - asked) * 1000)
                tokens.append(reply.stats.token_count)
                messages.append(ChatMessage("assistant", reply.text))
        except BaseException as exc:  # noqa: BLE001 - raised again in the main thread
            failures.append(exc)

    threads = [threading.Thread(target=chat, args=(i, b), daemon=True) for i, b in enumerate(backends)]
    sampler = PeakMemory(roots)
    for thread in [*threads, sampler]:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    rss, pss = sampler.stop()
    if failures:
        raise failures[0]
    return {
        "chats": len(backends), "replies": len(tokens), "tokens": sum(tokens), "wall_s": wall,
        "tokens_per_s": sum(tokens) / wall, "ttft_ms_p50": statistics.median(ttfts),
        "ttft_ms_p95": common.percentile(ttfts, 0.95), "rss_mib": rss, "pss_mib": pss,
    }


def warm_up(backends: list, params) -> None:  # noqa: ANN001
    """A short reply from every backend, all at once."""
    from assistant.engine.base import ChatMessage

    with ThreadPoolExecutor(len(backends)) as pool:
        list(pool.map(lambda backend: "".join(backend.stream([ChatMessage("user", "Hello")], params)), backends))


def start_server(model_dir: Path, data_dir: Path, config: Path, log_path: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    """`assistant serve` (`extra`: arguments for vLLM) in a subprocess; returns once /health and /v1/models answer."""
    from assistant.engine.remote import ServerAPI
    from assistant.server.process import serving

    with socket.socket() as probe:  # a free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [str(Path(sys.executable).parent / "assistant"), "serve", "--data-dir", str(data_dir), "--config", str(config),
               "--model", str(model_dir), "--port", str(port), *(["--", *extra] if extra else [])]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ASSISTANT_HUB_MODEL": "", "ASSISTANT_USER": "bench"}
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}/v1"
    api = ServerAPI(url, timeout=5)
    deadline = time.monotonic() + START_TIMEOUT_S
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"assistant serve exited with {process.returncode}:\n{tail(log_path)}")
            if serving(api):
                return process, url
            if time.monotonic() > deadline:
                stop_server(process)
                raise RuntimeError(f"the model server did not start in {START_TIMEOUT_S:.0f} s:\n{tail(log_path)}")
            time.sleep(0.5)
    finally:
        api.close()


def stop_server(process: subprocess.Popen) -> None:
    """SIGTERM to `assistant serve` (it stops vLLM); SIGKILL to what is left of its tree after 60 s."""
    below = descendants([process.pid])
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    except subprocess.TimeoutExpired:
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def make_adapter(model_dir: Path, out: Path) -> Path:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", init_lora_weights=False, task_type="CAUSAL_LM")
    get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir), config).save_pretrained(out)
    return out


def adapter_loads(url: str, path: Path, loads: int) -> dict:
    """Load the adapter under a fresh name, unload it; `loads` times. The first load is also probed."""
    from assistant.engine.remote import ServerAPI

    api = ServerAPI(url)
    load_ms, unload_ms = [], []
    try:
        for i in range(loads):
            started = time.perf_counter()
            api.load_adapter(f"bench-{i}", str(path))
            load_ms.append((time.perf_counter() - started) * 1000)
            if i == 0:
                api.probe("bench-0")  # it really serves
            started = time.perf_counter()
            api.unload_adapter(f"bench-{i}")
            unload_ms.append((time.perf_counter() - started) * 1000)
    finally:
        api.close()
    return {"load_ms_p50": statistics.median(load_ms), "load_ms_p95": common.percentile(load_ms, 0.95),
            "unload_ms_p50": statistics.median(unload_ms), "load_ms": load_ms}


def server_side(args, model_dir: Path, root: Path, settings, adapter: Path) -> tuple[dict, dict, float]:  # noqa: ANN001
    """The chats against one `assistant serve`, then the adapter loads; the server stopped after."""
    from assistant.engine.remote import RemoteBackend

    started = time.perf_counter()
    server, url = start_server(model_dir, root / "server", root / "config.toml", root / "serve.log", shlex.split(args.vllm))
    start_s, results = time.perf_counter() - started, {}
    try:
        backends = [RemoteBackend.connect(settings(server_url=url)) for _ in range(max(args.counts))]
        warm_up(backends, args.short)
        for n in args.counts:
            results[n] = run_batch(backends[:n], args.questions_text, args.questions, args.params, [server.pid])
            print(f"server, {n} chats: {results[n]['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
        for backend in backends:
            backend.close()
        return results, adapter_loads(url, adapter, args.loads), start_s
    finally:
        stop_server(server)


def in_process_side(args, settings) -> tuple[dict, dict]:  # noqa: ANN001
    """For each N: N workers started at once, warmed up, the chats, the workers closed."""
    from assistant.engine.worker import ProcessBackend

    results, start_s = {}, {}
    for n in args.counts:
        started, workers = time.perf_counter(), []
        try:
            with ThreadPoolExecutor(n) as pool:
                futures = [pool.submit(ProcessBackend.start, settings()) for _ in range(n)]
            workers = [f.result() for f in futures if f.exception() is None]
            for future in futures:
                future.result()  # the first failure, once the others are in `workers` to be closed
            start_s[n] = time.perf_counter() - started
            warm_up(workers, args.short)
            pids = [w.pid for w in workers]
            results[n] = run_batch(workers, args.questions_text, args.questions, args.params, pids)
            print(f"in-process, {n} chats: {results[n]['tokens_per_s']:.0f} tokens/s", file=sys.stderr)
        finally:
            for worker in workers:
                worker.close()
    return results, start_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chats", default="1,4,8,16", help="concurrent chats, comma-separated")
    parser.add_argument("--questions", type=int, default=4, help="questions each chat asks, in sequence")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--recipe", choices=["demo", "tiny"], default="demo")
    parser.add_argument("--shape", default="", help="instead of the demo model: a random model of this shape "
                        "(scripts/bench/shapes.py, e.g. qwen2.5-0.5b), which never ends a reply early")
    parser.add_argument("--loads", type=int, default=30, help="adapter loads timed on the server")
    parser.add_argument("--vllm", default="", help="arguments for vLLM, passed after `assistant serve --`")
    parser.add_argument("--quick", action="store_true", help="1,4 chats, 2 questions, the tiny recipe")
    parser.add_argument("--json", default="serve.json", help="file name under $OUT")
    args = parser.parse_args()
    if args.quick:
        args.chats, args.questions, args.recipe = "1,4", 2, "tiny"
    args.counts = sorted({int(n) for n in args.chats.split(",")})

    from assistant.adapters.registry import publish
    from assistant.demo.build import ensure_demo_model
    from assistant.demo.samples import load_samples
    from assistant.engine.base import GenerationParams
    from assistant.server import environment
    from assistant.settings import load_settings

    common.quiet()
    environment.ensure()  # vLLM's virtualenv (installed once)
    args.questions_text = [c[0]["content"] for c in load_samples() if c and c[0]["role"] == "user"]
    args.params = GenerationParams(max_new_tokens=args.max_new_tokens, temperature=0.0, top_p=1.0)
    args.short = GenerationParams(max_new_tokens=8, temperature=0.0, top_p=1.0)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as scratch:
        root = Path(scratch)
        (root / "config.toml").write_text("")  # no user config file applies
        model_dir = common.model_dir(args.shape) if args.shape else ensure_demo_model(common.DEFAULT_CACHE, recipe=args.recipe)
        adapter = publish(make_adapter(model_dir, root / "raw"), root / "server", "v0001", {"base_model": {"name": model_dir.name}})

        def settings(**extra: object):  # noqa: ANN202
            values = {"model": str(model_dir), "hub_model": "", "user": "bench", "device": "cpu", **extra}
            return load_settings(data_dir=root / "chat", config_file=root / "config.toml", environ={}, overrides=values).settings

        served, adapters, server_start_s = server_side(args, model_dir, root, settings, adapter)
        local, worker_start_s = in_process_side(args, settings)
    load_after = os.getloadavg()

    met = {True: "met", False: "NOT met"}.get
    base, at = args.counts[0], (8 if 8 in args.counts else args.counts[-1])
    for row in served.values():
        row["growth_pss_mib"] = row["pss_mib"] - served[base]["pss_mib"]
        row["growth_rss_mib"] = row["rss_mib"] - served[base]["rss_mib"]
    described = f"random {args.shape} shape" if args.shape else f"demo recipe {args.recipe!r}"
    print(f"model: {described} ({model_dir.name}); {args.questions} questions per chat, greedy, at most "
          f"{args.max_new_tokens} new tokens; {common.device_name()}; vLLM {environment.VLLM_VERSION} {args.vllm}".rstrip())
    print(f"start: server {server_start_s:.0f} s; in-process workers " + ", ".join(f"{n}: {s:.0f} s" for n, s in worker_start_s.items()))
    print(f"{'side':<11} {'chats':>5} {'tokens':>7} {'wall s':>7} {'tok/s':>7} {'TTFT p50':>9} {'TTFT p95':>9} "
          f"{'RSS MiB':>8} {'PSS MiB':>8} {f'+PSS vs {base}':>10}")
    for side, rows in (("server", served), ("in-process", local)):
        for n, row in rows.items():
            growth = f"{row['growth_pss_mib']:>10.0f}" if "growth_pss_mib" in row else ""
            print(f"{side:<11} {n:>5} {row['tokens']:>7} {row['wall_s']:>7.1f} {row['tokens_per_s']:>7.1f} {row['ttft_ms_p50']:>9.0f} "
                  f"{row['ttft_ms_p95']:>9.0f} {row['rss_mib']:>8.0f} {row['pss_mib']:>8.0f} {growth}")
    print(f"adapter load on the server, {args.loads} loads: p50 {adapters['load_ms_p50']:.1f} ms, "
          f"p95 {adapters['load_ms_p95']:.1f} ms (unload p50 {adapters['unload_ms_p50']:.1f} ms)")

    per_chat_server = served[at]["growth_pss_mib"] / (at - base) if at > base else float("nan")
    per_chat_local = local[at]["pss_mib"] / at
    targets = {
        "memory_per_chat_ratio": per_chat_server / per_chat_local,
        "tokens_per_s_ratio": served[at]["tokens_per_s"] / local[at]["tokens_per_s"],
        "adapter_load_ms_p50": adapters["load_ms_p50"],
    }
    print(f"targets at {at} chats:")
    print(f"  (a) memory per added chat, server / in-process: {per_chat_server:.1f} / {per_chat_local:.1f} MiB PSS "
          f"= {targets['memory_per_chat_ratio']:.3f} (target <= 0.1: {met(targets['memory_per_chat_ratio'] <= 0.1)})")
    print(f"  (b) aggregate tokens/s, server / in-process: {served[at]['tokens_per_s']:.1f} / {local[at]['tokens_per_s']:.1f} "
          f"= {targets['tokens_per_s_ratio']:.2f}x (target >= 2: {met(targets['tokens_per_s_ratio'] >= 2)})")
    print(f"  (c) adapter load p50: {adapters['load_ms_p50']:.1f} ms (target <= 100: {met(adapters['load_ms_p50'] <= 100)})")
    print(f"load average (1 min) before {load_before[0]:.2f}, after {load_after[0]:.2f}, on {os.cpu_count()} cores")
    common.write_json(args.json, {
        "bench": "serve", "recipe": args.recipe, "shape": args.shape, "model": model_dir.name, "chats": args.counts, "questions": args.questions,
        "max_new_tokens": args.max_new_tokens, "vllm_args": args.vllm, "device": common.device_name(),
        "vllm": environment.VLLM_VERSION, "server_start_s": server_start_s, "worker_start_s": worker_start_s,
        "results": {"server": served, "in-process": local}, "adapters": adapters, "targets_at": at, "targets": targets,
        "loadavg_before": load_before, "loadavg_after": load_after,
    })


if __name__ == "__main__":
    main()
