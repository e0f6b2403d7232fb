"""The in-process backend: a transformers causal LM, optionally 4-bit, with an unmerged LoRA adapter.

On CUDA the base model is loaded in 4-bit NF4 with double quantisation and bf16 compute, the way
it is trained. On CPU it is full precision unless `cpu_load_in_4bit` asks for bitsandbytes'
CPU 4-bit. Weights are read from safetensors only. Generation runs in a thread of its own, the same
one for every reply (a new thread per reply paid for a new OpenMP thread pool before its first
token), and streams token by token; cancelling stops it at the next token.

Adapters are hot-swapped between replies (`swap_adapter`), never during one: the swap holds the
lock that generation holds. The new version is loaded beside the one serving, under its own peft
adapter name, without reloading the base model; it is checked (every weight in its file loaded, a
finite probe forward pass) before it serves, and the old one is then deleted, so memory stays flat.
Serving no adapter keeps the peft wrapper with its adapter layers disabled.

For blind A/B replies a second version can be loaded beside the one serving (`load_alternate`), on
the same base model: a reply asked with `alternate=True` selects it for its generation, under the same
lock, and the serving version is selected again when it ends.
"""

from __future__ import annotations

import logging
import queue
import re
import sys
import threading
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from assistant.adapters.registry import WEIGHTS, check_files, check_weights
from assistant.engine.base import CancelEvent, ChatMessage, GenerationParams, LoadProgress, ModelIdentity, Reply, prompt_budget, too_long
from assistant.engine.prompt import encode_chat
from assistant.engine.resolve import ModelChoice, resolve_model
from assistant.errors import ModelError
from assistant.quantization import load_options, precision_label
from assistant.settings import Settings

log = logging.getLogger(__name__)

END_OF_TURN_TOKENS = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<|endoftext|>")


def pick_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelError("device is set to cuda but no CUDA GPU is available", hint="set device = \"auto\"")
    return requested


def check_adapter_dir(path: Path) -> None:
    """Only safetensors adapters are loaded: pickle files, missing files and (for a published version)
    files that do not match the checksums in its meta.json are refused."""
    check_files(path, verify=False)


class LocalBackend:
    """A loaded model and tokenizer. `stream()` and `swap_adapter()` may be called from any thread;
    one reply at a time, and a swap waits for the reply being generated."""

    def __init__(self, model, tokenizer, identity: ModelIdentity) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._identity = identity
        self._lock = threading.Lock()  # held by a generation or a swap
        self._adapter: str | None = _peft_adapter(model)  # the peft adapter name loaded, if any
        self._disabled = False  # the adapter layers are off: the bare base model answers
        self._alternate: tuple[str, str] | None = None  # (version, peft adapter name) loaded for A/B replies
        self._loads = 0
        self._device = next(model.parameters()).device
        vocab = tokenizer.get_vocab()
        stop: set[int] = {vocab[t] for t in END_OF_TURN_TOKENS if t in vocab}
        for token in (tokenizer.eos_token_id, model.generation_config.eos_token_id):
            stop.update(token if isinstance(token, list) else [] if token is None else [token])
        self._stop_ids = sorted(stop)
        self._pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self._stop_ids[0]
        self._context = getattr(model.config, "max_position_embeddings", None) or 4096
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None  # runs the jobs: started with the first reply

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    def encode(self, messages: Sequence[ChatMessage], max_new_tokens: int) -> list[int]:
        """Token ids of the prompt; the oldest turns give way when it would not fit the context.

        The prompt may use the context but for room for the reply (at most half the context).
        """
        budget = prompt_budget(self._context, max_new_tokens)
        system = [m for m in messages[:1] if m.role == "system"]
        turns = list(messages[len(system) :])
        while True:
            ids = encode_chat(self.tokenizer, [*system, *turns])
            if len(ids) <= budget:
                return ids
            if len(turns) <= 1:
                raise too_long(len(ids), budget)
            turns = turns[2:] if len(turns) > 2 else turns[1:]

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        self.encode(messages, params.max_new_tokens)

    @property
    def alternate(self) -> ModelIdentity | None:
        """Who answers a reply asked with `alternate=True`; None while no second version is loaded."""
        alternate = self._alternate
        return replace(self._identity, adapter=alternate[0]) if alternate is not None else None

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        cancel = threading.Event()
        started: list[ModelIdentity] = []
        chunks, budget = self.generate(messages, params, cancel, on_start=started.append, alternate=alternate)
        return Reply(chunks, cancel, budget, identity=lambda: started[0] if started else None)

    def generate(
        self,
        messages: Sequence[ChatMessage],
        params: GenerationParams,
        cancel: CancelEvent,
        on_start: Callable[[ModelIdentity], None] | None = None,
        alternate: bool = False,
    ) -> tuple[Iterator[tuple[str, int]], int]:
        """Start a reply in a thread: its (new text, new tokens) pieces as they come, and its token budget.

        Generation stops at the next token once `cancel` is set. `on_start` gets the identity that
        produces the reply, from the generation thread once it holds the model, before any piece.
        `alternate`: the version loaded with `load_alternate` answers (ModelError when there is none).
        """
        if alternate and self._alternate is None:
            raise ModelError("no second version is loaded to answer beside the one serving")
        ids = self.encode(messages, params.max_new_tokens)
        max_new_tokens = min(params.max_new_tokens, self._context - len(ids))
        chunks = _Chunks(self.tokenizer)
        input_ids = torch.tensor([ids], device=self._device)
        kwargs = dict(
            input_ids=input_ids,
            attention_mask=torch.ones_like(input_ids),
            max_new_tokens=max_new_tokens,
            streamer=chunks,
            stopping_criteria=StoppingCriteriaList([_Cancelled(cancel)]),
            eos_token_id=self._stop_ids,
            pad_token_id=self._pad_id,
            repetition_penalty=params.repetition_penalty,
        )
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=params.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)

        finished = threading.Event()

        def generate() -> None:
            try:
                with self._lock, torch.inference_mode():
                    identity = self._identity
                    if alternate:
                        if self._alternate is None:  # unloaded while this reply waited for the model
                            raise ModelError("the second version was unloaded before its reply started")
                        identity = replace(identity, adapter=self._alternate[0])
                        self._select(self._alternate[1])
                    try:
                        if on_start is not None:
                            on_start(identity)
                        self.model.generate(**kwargs)
                    finally:
                        if alternate:
                            self._select_serving()
            except BaseException as exc:  # reported to the reader of the stream
                log.exception("generation failed")
                chunks.fail(exc)
            finally:
                chunks.end()
                finished.set()

        self._submit(generate)

        def stream_then_wait() -> Iterator[tuple[str, int]]:
            try:
                yield from chunks.iterate()
            finally:
                # A reader that stops early has cancelled: generation ends at the next token.
                finished.wait()

        return stream_then_wait(), max_new_tokens

    def _submit(self, job: Callable[[], None]) -> None:
        """Run `job` on the generation thread, started with the first reply and kept for the next."""
        if self._thread is None or not self._thread.is_alive():
            # The thread holds the queue, not the backend: a backend dropped without close() is freed,
            # and its thread told to end.
            self._thread = threading.Thread(target=_run_jobs, args=(self._jobs,), name="generate", daemon=True)
            self._thread.start()
            weakref.finalize(self, self._jobs.put, None)
        self._jobs.put(job)

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        """Serve adapter `version` from `path` (None: the bare base model) from the next reply on.

        Waits for the reply being generated. The files are verified against the version's meta.json
        first; a version that cannot be served raises ModelError and the current one keeps answering.
        """
        expected = self._verified(version, path) if version is not None else None
        with self._lock:
            if version is None:
                self._serve_base()
            else:
                self._serve_adapter(version, path, expected)
            self._identity = replace(self._identity, adapter=version)
            log.info("serving %s", self._identity.label)
            return self._identity

    def _verified(self, version: str, path: Path | None) -> dict[str, tuple[list, float]]:
        """The version's files checked against its meta.json and this model; the fingerprint of its weights."""
        if path is None:
            raise ModelError(f"adapter {version}: no directory given")
        meta = check_files(path, verify=True) or {}
        base = meta.get("base_model")
        trained_on = base.get("name") if isinstance(base, dict) else base
        if trained_on and trained_on != self._identity.model:
            raise ModelError(f"adapter {version} was trained on {trained_on}, and this chat serves {self._identity.model}")
        check_weights(path)  # what a promotion checks too: header, sizes, finite values, ranks
        return _file_fingerprint(path / WEIGHTS, version)

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        """Load adapter `version` from `path` beside the one serving, on the same base model, to answer
        replies asked with `alternate=True` (blind A/B); None unloads it. What serves is unchanged.

        Checked as a swap is (files, weights, a finite forward pass); a version that cannot be loaded
        raises ModelError and the previous second version, if any, stays. Waits for the reply being
        generated. Returns who answers the alternate replies.
        """
        if version is None:
            with self._lock:
                self._drop_alternate()
            return None
        if version == self._identity.adapter:
            raise ModelError(f"adapter {version} is the version serving; it cannot also answer beside itself")
        if self._alternate is not None and self._alternate[0] == version:
            return self.alternate
        expected = self._verified(version, path)
        with self._lock:
            if version == self._identity.adapter:  # swapped in meanwhile
                raise ModelError(f"adapter {version} is the version serving; it cannot also answer beside itself")
            if self._alternate is not None and self._alternate[0] == version:
                return self.alternate
            name = self._load_checked(version, path, expected, "load")
            self._select_serving()
            self._drop_alternate()
            self._alternate = (version, name)
            log.info("loaded %s beside %s for A/B replies", version, self._identity.label)
            return self.alternate

    def _drop_alternate(self) -> None:
        """Unload the second version (with the lock held)."""
        if self._alternate is None:
            return
        name, self._alternate = self._alternate[1], None
        if set(self.model.peft_config) == {name}:  # the only adapter: back to the bare model
            self.model, self._adapter, self._disabled = _strip_adapter_layers(self.model), None, False
            return
        self.model.delete_adapter(name)
        self._select_serving()

    def _select(self, name: str | None) -> None:
        """Let peft adapter `name` answer (None: the base model, adapter layers off); with the lock held."""
        if name is None:
            if _peft_adapter(self.model) is not None:
                self.model.base_model.disable_adapter_layers()
            return
        self.model.set_adapter(name)
        self.model.base_model.enable_adapter_layers()

    def _select_serving(self) -> None:
        """Back to the version serving (with the lock held)."""
        self._select(None if self._disabled or self._adapter is None else self._adapter)

    def _serve_base(self) -> None:
        if self._adapter is not None and not self._disabled:
            self.model.base_model.disable_adapter_layers()
            self._disabled = True

    def _serve_adapter(self, version: str, path: Path, expected: dict[str, tuple[list, float]]) -> None:
        old = self._adapter
        if self._alternate is not None and self._alternate[0] == version:
            # The second version of A/B replies becomes the one serving: loaded and checked already.
            name, self._alternate = self._alternate[1], None
        else:
            name = self._load_checked(version, path, expected, "apply")
        self._adapter, self._disabled = name, False
        self._select(name)
        if old is not None and old != name:
            self.model.delete_adapter(old)

    def _load_checked(self, version: str, path: Path, expected: dict[str, tuple[list, float]], doing: str) -> str:
        """Load `version` as a new peft adapter beside what serves (wrapping the bare model in peft, its
        adapter layers off, if it was not), select it and check it; its name. With the lock held. A
        failure removes it and leaves what served as it was (ModelError)."""
        from peft import PeftModel

        name = self._new_adapter_name(version)
        old, was_disabled, wrapped = self._adapter, self._disabled, isinstance(self.model, PeftModel)
        try:
            if wrapped:
                self.model.load_adapter(path, adapter_name=name, is_trainable=False)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name, is_trainable=False)
                self._disabled = True  # the bare model served: it still does until the caller says otherwise
            self.model.eval()
            self._select(name)
            self._check_loaded(version, name, expected)
        except Exception as exc:
            self._drop_new_adapter(name, old, was_disabled, wrapped)
            if isinstance(exc, ModelError):
                raise
            raise ModelError(f"cannot {doing} adapter {version}: {_first_line(exc)}") from None
        return name

    def _new_adapter_name(self, version: str) -> str:
        """The version's name, unless a peft adapter of that name is loaded (a version promoted again)."""
        base = re.sub(r"[^\w-]", "_", version) or "adapter"
        loaded = getattr(self.model, "peft_config", {})
        name = base
        while name in loaded:
            self._loads += 1
            name = f"{base}-{self._loads}"
        return name

    def _check_loaded(self, version: str, name: str, expected: dict[str, tuple[list, float]]) -> None:
        """Every weight of the file is in the model under `name`, and the model answers finite logits with it."""
        loaded = _model_fingerprint(self.model, name)
        if loaded.keys() != expected.keys() or any(loaded[kind][0] != expected[kind][0] for kind in expected):
            saved = sum(len(shapes) for shapes, _ in expected.values())
            found = sum(len(shapes) for shapes, _ in loaded.values())
            raise ModelError(
                f"adapter {version} does not fit the model ({saved} LoRA weights in its file, {found} in the model)"
            )
        for kind, (_, total) in expected.items():
            if abs(loaded[kind][1] - total) > 1e-3 * max(1.0, abs(total)):
                raise ModelError(f"adapter {version}: its {kind} weights were not loaded as saved")
        ids = torch.tensor([encode_chat(self.tokenizer, [ChatMessage("user", "Hello")])], device=self._device)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
        if not torch.isfinite(logits).all():
            raise ModelError(f"adapter {version} makes the model produce NaN or infinite scores; not serving it")

    def _drop_new_adapter(self, name: str, old: str | None, was_disabled: bool, wrapped: bool) -> None:
        """Back to what served before a failed swap (or a failed second version)."""
        if not wrapped:
            self.model = _strip_adapter_layers(self.model)
            self._adapter, self._disabled = None, False
            return
        self._adapter, self._disabled = old, was_disabled
        if name in self.model.peft_config:
            self.model.delete_adapter(name)
        self._select_serving()
        self.model.eval()

    def health(self) -> str | None:
        return None  # in this process: it answers while the process lives

    def close(self) -> None:
        """The generation thread ends once the reply it is generating, if any, is done; the model goes
        with the process."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None


def _run_jobs(jobs: queue.SimpleQueue) -> None:
    while (job := jobs.get()) is not None:
        job()
        del job  # the finished reply's closure holds the backend


def _peft_adapter(model) -> str | None:  # noqa: ANN001
    peft = sys.modules.get("peft")  # not imported: no adapter was applied (and importing it is slow)
    return model.active_adapter if peft is not None and isinstance(model, peft.PeftModel) else None


def _lora_kind(name: str) -> str | None:
    """`lora_A`, `lora_B`, ... for a LoRA weight's name (saved or loaded), None for any other."""
    return next((part for part in name.split(".") if part.startswith("lora_")), None)


def _fingerprint(weights: Iterable[tuple[str, torch.Tensor]]) -> dict[str, tuple[list, float]]:
    """Per kind of LoRA weight: the sorted shapes and the sum of absolute values.

    Names are not compared: peft and transformers may rename keys on the way in.
    """
    shapes: dict[str, Counter] = {}
    totals: dict[str, float] = {}
    for name, tensor in weights:
        kind = _lora_kind(name)
        if kind is None:
            continue
        shapes.setdefault(kind, Counter())[tuple(tensor.shape)] += 1
        totals[kind] = totals.get(kind, 0.0) + tensor.detach().double().abs().sum().item()
    return {kind: (sorted(shapes[kind].elements()), totals[kind]) for kind in shapes}


def _file_fingerprint(weights: Path, version: str) -> dict[str, tuple[list, float]]:
    from safetensors import safe_open

    try:
        with safe_open(weights, framework="pt") as handle:
            found = _fingerprint((key, handle.get_tensor(key)) for key in handle.keys())
    except Exception as exc:  # a damaged file raises the reader's own error types
        raise ModelError(f"adapter {version}: {weights.name} is unreadable ({_first_line(exc)})") from None
    if not found:
        raise ModelError(f"adapter {version}: {weights.name} holds no LoRA weights")
    return found


def _model_fingerprint(model, name: str) -> dict[str, tuple[list, float]]:  # noqa: ANN001
    def weights() -> Iterator[tuple[str, torch.Tensor]]:
        for key, parameter in model.named_parameters():
            parts = key.split(".")
            if name in parts[1:] and parts[parts.index(name) - 1].startswith("lora_"):
                yield key, parameter

    return _fingerprint(weights())


def _strip_adapter_layers(model):  # noqa: ANN001, ANN202
    """The transformers model under a failed peft wrapping, with the adapter layers it injected removed."""
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    if isinstance(model, PeftModel):
        model = model.base_model.model
    for key, module in list(model.named_modules()):
        if isinstance(module, BaseTunerLayer):
            parent, _, child = key.rpartition(".")
            setattr(model.get_submodule(parent), child, module.get_base_layer())
    if hasattr(model, "peft_config"):
        del model.peft_config
    return model


class _Cancelled(StoppingCriteria):
    def __init__(self, event: CancelEvent) -> None:
        self.event = event

    def __call__(self, input_ids, scores, **kwargs):  # noqa: ANN001
        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


class _Chunks(BaseStreamer):
    """Receives token ids from `generate` and hands out (new text, new token count) pairs.

    Decoding is incremental: each new token is decoded with a few tokens before it (byte-level
    tokens only make sense in context), and text is held back while it ends in an incomplete
    multi-byte character.
    """

    _END = object()

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.queue: queue.Queue = queue.Queue()
        self.ids: list[int] = []
        self.prefix = 0  # ids[prefix:read] decode to text already handed out
        self.read = 0
        self.prompt_seen = False
        self.error: BaseException | None = None

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def _new_text(self) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        now = self._decode(self.ids[self.prefix :])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""  # nothing yet, or part of a multi-byte character: wait for the rest
        self.prefix, self.read = self.read, len(self.ids)
        return now[len(before) :]

    def put(self, value) -> None:  # noqa: ANN001
        if not self.prompt_seen:
            self.prompt_seen = True
            return
        new = value.reshape(-1).tolist()
        self.ids += new
        self.queue.put((self._new_text(), len(new)))

    def fail(self, error: BaseException) -> None:
        self.error = error

    def end(self) -> None:
        if self.read < len(self.ids):
            before = self._decode(self.ids[self.prefix : self.read])
            rest = self._decode(self.ids[self.prefix :])[len(before) :]
            if rest:
                self.queue.put((rest, 0))
        self.queue.put(self._END)

    def iterate(self) -> Iterator[tuple[str, int]]:
        while (item := self.queue.get()) is not self._END:
            yield item
        if self.error is not None:
            raise ModelError(f"generation failed: {self.error}") from self.error


def load_local_backend(
    choice: ModelChoice,
    *,
    device: str = "auto",
    cpu_load_in_4bit: bool = False,
    adapter: str = "",
    progress: LoadProgress | None = None,
) -> LocalBackend:
    report = progress or (lambda message, fraction: None)
    target = pick_device(device)
    report(f"Loading tokenizer of {choice.name}", None)
    try:
        tokenizer = AutoTokenizer.from_pretrained(choice.path)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load the tokenizer of {choice.name}: {_first_line(exc)}") from None

    on_cuda = target == "cuda"
    four_bit = on_cuda or cpu_load_in_4bit  # served as trained (assistant/quantization.py)
    kwargs = load_options(on_cuda=on_cuda, four_bit=four_bit)
    precision = precision_label(on_cuda=on_cuda, four_bit=four_bit)
    report(f"Loading {choice.name} ({precision}) on {target}", None)
    try:
        model = AutoModelForCausalLM.from_pretrained(choice.path, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {choice.name}: {_first_line(exc)}") from None

    adapter_name = None
    if adapter:
        from peft import PeftModel

        adapter_dir = Path(adapter).expanduser()
        check_adapter_dir(adapter_dir)
        adapter_name = adapter_dir.name
        report(f"Applying adapter {adapter_name}", None)
        try:
            model = PeftModel.from_pretrained(model, adapter_dir, adapter_name=adapter_name, is_trainable=False)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ModelError(f"cannot apply adapter {adapter_dir}: {_first_line(exc)}") from None
    model.eval()

    device_label = "cpu"
    if target == "cuda":
        device_label = f"cuda ({torch.cuda.get_device_name(0)})"
    identity = ModelIdentity(
        model=choice.name,
        adapter=adapter_name,
        device=device_label,
        precision=precision,
        is_demo=choice.is_demo,
        notice=choice.banner,
        is_fallback=choice.is_fallback,
    )
    report(f"Ready: {identity.label}", 1.0)
    return LocalBackend(model, tokenizer, identity)


def open_backend(settings: Settings, progress: LoadProgress | None = None) -> LocalBackend:
    """The configured model, resolved (downloaded or built when needed) and loaded."""
    return load_local_backend(
        resolve_model(settings, progress),
        device=settings.device,
        cpu_load_in_4bit=settings.cpu_load_in_4bit,
        adapter=settings.adapter,
        progress=progress,
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
