"""The model server backend: replies streamed from an OpenAI-compatible server, adapters loaded into it.

A team runs one model server (vLLM: continuous batching, many LoRA adapters loaded at runtime) and
every chat talks to it; `assistant serve` starts one. Any server that speaks the OpenAI chat API
answers chats (vLLM, SGLang, llama.cpp's server, Ollama, TGI); adapters need vLLM's runtime LoRA
endpoints (`/v1/load_lora_adapter`, `/v1/unload_lora_adapter`, with VLLM_ALLOW_RUNTIME_LORA_UPDATING).

The HTTP side is the `openai` client's: requests, streaming, server-sent events, timeouts. Every
failure becomes one `ServerError` line (unreachable, refused, timed out, an HTTP error, a reply broken
off), and a version the server will not load a `ModelError`; the API key is read from the environment
variable the settings name, and never kept anywhere else.

Message contents are untrusted: text that spells a special token (`<|im_end|>`) is defused before it
is sent, as the dataset builder does for training, because the server renders the chat template and
tokenises the result with special tokens parsed.

No torch here: the chat app uses this backend in its own process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from assistant.adapters.registry import check_files
from assistant.data.clean import defuse, special_token_pattern
from assistant.engine.base import TOO_LONG, ChatMessage, GenerationParams, LoadProgress, ModelIdentity, Reply, prompt_budget, too_long
from assistant.errors import AssistantError, InputError, ModelError, ServerError
from assistant.settings import Settings
from assistant.text import one_line

log = logging.getLogger(__name__)

PROBE_MESSAGES = [{"role": "user", "content": "Hello"}]
PROBE_TOKENS = 4
HEALTH_TIMEOUT_S = 3.0
COUNT_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class ServedModel:
    """One entry of the server's model list: a base model (parent None) or a LoRA adapter loaded on it."""

    id: str
    root: str | None
    parent: str | None
    max_model_len: int | None = None


def api_key(settings: Settings) -> str | None:
    """The key from the environment variable `server_api_key_env` names; None when unset."""
    if not settings.server_api_key_env:
        return None
    return os.environ.get(settings.server_api_key_env) or None


class ServerAPI:
    """One model server: the OpenAI client for chats and the model list, plus vLLM's LoRA and health routes."""

    def __init__(self, url: str, *, key: str | None = None, timeout: float = 30.0) -> None:
        import httpx2
        import openai

        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
        self.address = f"{host}:{parts.port}" if parts.port else str(host)  # shown in messages: no credentials
        path = parts.path[: -len("/v1")] if parts.path.endswith("/v1") else parts.path
        self.root = f"{parts.scheme}://{parts.netloc}{path}"  # where /health, /metrics, /version live
        self.timeout = timeout
        self.client = openai.OpenAI(
            base_url=self.url,
            api_key=key or "none",  # the client insists on one; servers without a key ignore it
            timeout=httpx2.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT_S)),
            max_retries=0,  # a chat shows the failure at once; the user retries with `r`
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerAPI:
        if not settings.server_url:
            raise ModelError("no model server is configured (server_url is empty)")
        return cls(settings.server_url, key=api_key(settings), timeout=settings.server_timeout)

    def close(self) -> None:
        self.client.close()

    # -- reading -----------------------------------------------------------------------------

    def models(self) -> list[ServedModel]:
        """Every model the server answers for: base models and the adapters loaded on them."""
        with self.failures("list the models"):
            page = self.client.models.list()
        found = []
        for card in page.data:
            extra = card.model_extra or {}
            found.append(ServedModel(card.id, extra.get("root"), extra.get("parent"), extra.get("max_model_len")))
        return found

    def base_model(self, wanted: str = "") -> ServedModel:
        """The base model chats use: `wanted` (it must be served), else the first one the server lists."""
        bases = [m for m in self.models() if m.parent is None]
        if not bases:
            raise ServerError(f"the model server at {self.address} serves no model")
        if not wanted:
            return bases[0]
        for model in bases:
            if wanted in {model.id, model.root}:
                return model
        names = ", ".join(m.id for m in bases)
        raise ModelError(
            f"the model server at {self.address} serves {names}, not {wanted}",
            hint="set server_model to the name the server uses, or leave it empty",
        )

    def health(self) -> None:
        """Raise ServerError unless the server answers its health check (vLLM's /health; else the model list)."""
        import openai

        try:
            self.client.get(f"{self.root}/health", cast_to=str, options={"timeout": min(self.timeout, HEALTH_TIMEOUT_S)})
        except openai.NotFoundError:  # not vLLM: any OpenAI-compatible server lists its models
            self.models()
        except Exception as exc:
            raise server_error(exc, self.address, "answer its health check") from None

    def version(self) -> str | None:
        """vLLM's version, or None for another kind of server."""
        try:
            text = self.client.get(f"{self.root}/version", cast_to=str, options={"timeout": HEALTH_TIMEOUT_S})
            return json.loads(text).get("version")
        except Exception:  # noqa: BLE001 - any failure means: not a vLLM server we can ask
            return None

    def count_tokens(self, model: str, messages: list[dict[str, str]]) -> tuple[int, int | None] | None:
        """How many tokens `messages` make as the prompt of a reply, counted by the server (vLLM's
        /tokenize: its chat template with the generation prompt, its tokenizer), and the context length
        it reports. None when it cannot say: another OpenAI-compatible server has no such route, or no
        answer came."""
        try:
            counted = self.client.post(
                f"{self.root}/tokenize",
                body={"model": model, "messages": messages, "add_generation_prompt": True},
                cast_to=object,
                options={"timeout": min(self.timeout, COUNT_TIMEOUT_S)},
            )
        except Exception as exc:  # noqa: BLE001 - cannot count: the question is sent, and the server decides
            status = getattr(exc, "status_code", None)
            log.info("the model server at %s does not count tokens (%s%s)", self.address, type(exc).__name__,
                     f" {status}" if status else "")
            return None
        count = counted.get("count") if isinstance(counted, dict) else None
        if not isinstance(count, int):
            return None
        context = counted.get("max_model_len")
        return count, context if isinstance(context, int) else None

    def metrics(self) -> str:
        """The server's Prometheus metrics (vLLM), as text."""
        with self.failures("report its metrics"):
            return self.client.get(f"{self.root}/metrics", cast_to=str)

    # -- adapters (vLLM's runtime LoRA routes) ------------------------------------------------

    def load_adapter(self, name: str, path: str) -> bool:
        """Load the LoRA adapter at `path` (as the server sees it) under `name`; False when it was
        loaded already (by another chat, or a promotion).

        A load the server refuses (rank over its maximum, another base model, unreadable files, LoRA
        not enabled) raises ModelError, and so does a name the server holds for other files (another
        data dir's version of that number): one server serves one data dir's versions.
        """
        import openai

        loaded = {m.id: m for m in self.models()}
        if name in loaded:
            if loaded[name].root == path:
                return False
            raise ModelError(
                f"the model server at {self.address} serves another adapter named {name} (from {loaded[name].root})",
                hint="one model server serves the versions of one data dir",
            )
        try:
            self.client.post("/load_lora_adapter", body={"lora_name": name, "lora_path": path}, cast_to=str)
        except openai.APIStatusError as exc:
            message = _error_message(exc)
            if exc.status_code == 400 and "already been loaded" in message:
                return False  # another chat loaded it a moment ago
            if exc.status_code == 404 and "No adapter found" not in message and "cannot be found" not in message:
                raise ModelError(
                    f"the model server at {self.address} does not load adapters at runtime",
                    hint="start it with `assistant serve`, or vLLM with --enable-lora and VLLM_ALLOW_RUNTIME_LORA_UPDATING=True",
                ) from None
            raise ModelError(f"the model server refused adapter {name}: {_refusal(message)}") from None
        except Exception as exc:
            raise server_error(exc, self.address, f"load adapter {name}") from None
        return True

    def unload_adapter(self, name: str) -> bool:
        """Unload adapter `name`; False when the server did not have it."""
        import openai

        try:
            self.client.post("/unload_lora_adapter", body={"lora_name": name}, cast_to=str)
        except openai.NotFoundError:
            return False
        except Exception as exc:
            raise server_error(exc, self.address, f"unload adapter {name}") from None
        return True

    def runtime_loading(self) -> bool | None:
        """Does the server load adapters at runtime? None when it cannot be told."""
        import openai

        try:
            self.client.post("/unload_lora_adapter", body={"lora_name": "assistant-doctor-probe"}, cast_to=str)
        except openai.NotFoundError as exc:
            return isinstance(exc.body, dict) and "cannot be found" in str(exc.body.get("message", ""))
        except Exception:  # noqa: BLE001
            return None
        return True

    def probe(self, model: str) -> str:
        """A short greedy answer from `model`: the proof that a loaded adapter serves. An error the
        server answers with is a refusal (ModelError); no answer at all is a ServerError."""
        import openai

        try:
            answer = self.client.chat.completions.create(
                model=model, messages=PROBE_MESSAGES, max_tokens=PROBE_TOKENS, temperature=0.0
            )
        except (openai.APIStatusError, openai.APIResponseValidationError) as exc:
            if isinstance(exc, openai.AuthenticationError):
                raise server_error(exc, self.address, f"answer with {model}") from None
            raise ModelError(f"adapter {model} failed its probe on the model server: {one_line(_error_message(exc), 200)}") from None
        except Exception as exc:
            raise server_error(exc, self.address, f"answer with {model}") from None
        if not answer.choices:
            raise ModelError(f"adapter {model} gave no answer on the model server")
        return answer.choices[0].message.content or ""

    @contextmanager
    def failures(self, doing: str) -> Iterator[None]:
        """The client's exceptions as one ServerError line (an AssistantError passes through)."""
        try:
            yield
        except AssistantError:
            raise
        except Exception as exc:
            raise server_error(exc, self.address, doing) from None


def server_error(exc: BaseException, address: str, doing: str) -> ServerError:
    """One line for a failure of the `openai` client (or the HTTP library under it)."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ServerError(f"the model server at {address} did not answer in time (trying to {doing})")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        reason = one_line(str(cause), 120) if cause is not None and str(cause) else "no connection"
        return ServerError(f"cannot reach the model server at {address}: {reason}")
    if isinstance(exc, openai.AuthenticationError):
        return ServerError(
            f"the model server at {address} refused the API key (HTTP 401)",
            hint="set server_api_key_env to the variable that holds its key",
        )
    if isinstance(exc, openai.APIStatusError):
        return ServerError(
            f"the model server at {address} answered HTTP {exc.status_code} (trying to {doing}): "
            f"{one_line(_error_message(exc), 200)}"
        )
    return ServerError(f"the model server at {address} failed (trying to {doing}): {type(exc).__name__}: {one_line(str(exc), 160)}")


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error") if isinstance(body.get("error"), dict) else body
        if inner.get("message"):
            return str(inner["message"])
    return str(getattr(exc, "message", "") or exc)


def _refusal(message: str) -> str:
    """vLLM wraps the worker's reason: keep the reason."""
    if "Worker failed with error '" in message:
        message = message.split("Worker failed with error '", 1)[1].split("'", 1)[0]
    return one_line(message, 200)


def special_tokens(model_dir: Path) -> list[str]:
    """The special tokens a local model directory's tokenizer declares (empty when it cannot be read)."""
    found: set[str] = set()
    try:
        data = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
        found.update(t["content"] for t in data.get("added_tokens", []) if t.get("special"))
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
        found.update(t["content"] for t in (config.get("added_tokens_decoder") or {}).values() if t.get("special"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        pass
    return sorted(found)


class _StreamCancel:
    """What cancelling a remote reply sets: a flag, and the HTTP stream closed, so the server stops generating."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._response: Any = None

    def attach(self, response: Any) -> None:
        with self._lock:
            self._response = response
            if self._event.is_set():
                self._close()

    def set(self) -> None:
        with self._lock:
            self._event.set()
            self._close()

    def is_set(self) -> bool:
        return self._event.is_set()

    def _close(self) -> None:
        if self._response is not None:
            try:
                self._response.close()
            except Exception:  # noqa: BLE001 - closing a stream that is ending anyway
                log.debug("closing a cancelled stream failed", exc_info=True)


class RemoteBackend:
    """Chats answered by a model server. `stream()` may run in many threads; `swap_adapter()` from any.

    Create with `RemoteBackend.connect`. An unreachable server does not stop the backend from being
    created: `health()` says so, replies fail with a clear ServerError, and it recovers by itself.
    """

    def __init__(self, api: ServerAPI, settings: Settings) -> None:
        self.api = api
        self._wanted = settings.server_model
        self._adapters_dir = Path(settings.server_adapters_dir) if settings.server_adapters_dir else None
        self._lock = threading.Lock()
        self._base: ServedModel | None = None
        self._adapter: str | None = None
        self._adapter_path: Path | None = None  # where the adapter serving lives, to load it again
        self._alternate: tuple[str, Path] | None = None  # the second version for A/B replies, and its directory
        self._special = special_token_pattern()
        self._identity = ModelIdentity(
            model=settings.server_model or "(model server)",
            adapter=None,
            device=f"server {api.address}",
            precision="remote",
        )

    @classmethod
    def connect(cls, settings: Settings, progress: LoadProgress | None = None) -> RemoteBackend:
        """A backend for the configured server. A server that cannot be reached is reported by `health()`;
        one that serves another model than `server_model` is an error."""
        report = progress or (lambda message, fraction: None)
        api = ServerAPI.from_settings(settings)
        backend = cls(api, settings)
        report(f"Connecting to the model server at {api.address}", None)
        pinned = Path(settings.adapter).expanduser() if settings.adapter else None  # need not be a published version
        try:
            backend._learn_base()
            if pinned is not None:
                backend._serve(pinned.name, pinned, verify=False)
        except ServerError as exc:
            log.warning("%s", exc)
            if pinned is not None:  # the first reply that reaches the server loads it
                check_files(pinned, verify=False)
                backend._adapter, backend._adapter_path = pinned.name, pinned
                backend._identity = replace(backend._identity, adapter=pinned.name)
        except BaseException:
            api.close()
            raise
        report(f"Ready: {backend.identity.label}", 1.0)
        return backend

    def _learn_base(self) -> ServedModel:
        """Ask the server which base model it serves (and which server it is)."""
        from assistant.demo.build import DEMO_MODEL_ID
        from assistant.engine.resolve import DEMO_NOTICE

        base = self.api.base_model(self._wanted)
        version = self.api.version()
        root = Path(base.root) if base.root else None
        special = special_tokens(root) if root is not None and root.is_dir() else []
        with self._lock:
            self._base = base
            self._special = special_token_pattern(special)
            self._identity = replace(
                self._identity,
                model=base.id,
                precision=f"vLLM {version}" if version else "OpenAI API",
                is_demo=base.id == DEMO_MODEL_ID,
                notice=DEMO_NOTICE if base.id == DEMO_MODEL_ID else None,
            )
        return base

    @property
    def identity(self) -> ModelIdentity:
        return self._identity

    @property
    def base(self) -> ServedModel:
        """The served base model, asked for when not known yet (ServerError when unreachable)."""
        return self._base or self._learn_base()

    def health(self) -> str | None:
        """None when the server answers, else why not. Learns the base model when it comes back."""
        try:
            self.api.health()
            if self._base is None:
                self._learn_base()
        except ModelError as exc:
            return str(exc)
        return None

    # -- replies -------------------------------------------------------------------------------

    def check_prompt(self, messages: Sequence[ChatMessage], params: GenerationParams) -> None:
        """InputError when `messages` leave no room for the reply in the server's context: the server's
        tokenizer counts them as `stream` sends them, and its `max_model_len` less room for the reply
        (`prompt_budget`, the in-process engine's rule) decides. A server that cannot count (no
        /tokenize on another OpenAI-compatible server) or cannot be reached is not an answer: the
        question is sent, and a refusal then fails its reply (`_create`)."""
        try:
            base = self.base
        except ModelError:
            return
        counted = self.api.count_tokens(base.id, self._sendable(messages))
        if counted is None:
            return
        tokens, reported = counted
        context = base.max_model_len or reported
        if not context:
            return
        budget = prompt_budget(context, params.max_new_tokens)
        if tokens > budget:
            raise too_long(tokens, budget, " on the server")

    @property
    def alternate(self) -> ModelIdentity | None:
        """Who answers a reply asked with `alternate=True`; None while no second version is loaded."""
        alternate = self._alternate
        return replace(self._identity, adapter=alternate[0]) if alternate is not None else None

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams, alternate: bool = False) -> Reply:
        """Start a reply on the server (`alternate`: the second version answers). Raises ServerError when
        it cannot start (the server is down)."""
        import openai

        base = self.base
        with self._lock:
            adapter, adapter_path, identity = self._adapter, self._adapter_path, self._identity
            if alternate:
                if self._alternate is None:
                    raise ModelError("no second version is loaded to answer beside the one serving")
                adapter, adapter_path = self._alternate
                identity = replace(identity, adapter=adapter)
        model = adapter or base.id
        request = self._request(messages, params, model)
        cancel = _StreamCancel()
        started = time.perf_counter()
        try:
            response = self._create(request, messages, params)
        except openai.NotFoundError as exc:
            if adapter is None or adapter_path is None or model not in _error_message(exc):
                raise server_error(exc, self.api.address, "answer") from None
            # The server forgot the adapter (restarted, or a promotion unloaded it): load it again.
            log.info("adapter %s is not loaded on the server; loading it again", adapter)
            self.api.load_adapter(adapter, self._server_path(adapter_path))
            try:
                response = self._create(request, messages, params)
            except openai.NotFoundError as again:
                raise server_error(again, self.api.address, "answer") from None
        cancel.attach(response)
        answered: list[ModelIdentity] = []

        def chunks() -> Iterator[tuple[str, int]]:
            counted = 0
            try:
                for chunk in response:
                    if not answered and chunk.model:
                        answered.append(self._identity_of(chunk.model, identity))
                    text = "".join(choice.delta.content or "" for choice in chunk.choices if choice.delta)
                    usage = chunk.usage
                    if usage is not None and usage.completion_tokens is not None:
                        new, counted = max(0, usage.completion_tokens - counted), max(counted, usage.completion_tokens)
                    else:
                        new = 1 if text else 0
                        counted += new
                    if text or new:
                        yield text, new
            except Exception as exc:
                if cancel.is_set():
                    return  # closing the stream is how a reply is cancelled
                raise ServerError(
                    f"the model server at {self.api.address} broke off the reply: {one_line(str(exc) or type(exc).__name__, 160)}"
                ) from None
            finally:
                response.close()

        return Reply(
            chunks(), cancel, params.max_new_tokens, identity=lambda: answered[0] if answered else None, started=started
        )

    def _request(self, messages: Sequence[ChatMessage], params: GenerationParams, model: str) -> dict[str, Any]:
        extra: dict[str, Any] = {"skip_special_tokens": True}
        if params.repetition_penalty != 1.0:
            extra["repetition_penalty"] = params.repetition_penalty
        return {
            "model": model,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature > 0 else 1.0,
            "stream": True,
            # vLLM counts tokens on every piece; other servers give the usage at the end, or not at all.
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
            "extra_body": extra,
        }

    def _create(self, request: dict[str, Any], messages: Sequence[ChatMessage], params: GenerationParams) -> Any:
        """Send the request; when the prompt is too long for the server's context, the oldest turns give way."""
        import openai

        system = [m for m in messages[:1] if m.role == "system"]
        turns = list(messages[len(system):])
        while True:
            try:
                return self.api.client.chat.completions.create(messages=self._sendable([*system, *turns]), **request)
            except openai.BadRequestError as exc:
                text = _error_message(exc)
                if "context length" not in text and "too long" not in text:
                    raise server_error(exc, self.api.address, "answer") from None
                if len(turns) <= 1:
                    raise InputError(f"the message is {TOO_LONG} on the server: {one_line(text, 160)}") from None
                turns = turns[2:] if len(turns) > 2 else turns[1:]
            except openai.NotFoundError:
                raise
            except Exception as exc:
                raise server_error(exc, self.api.address, "answer") from None

    def _sendable(self, messages: Sequence[ChatMessage]) -> list[dict[str, str]]:
        """The messages as the server gets them: text that spells a special token defused."""
        return [{"role": m.role, "content": self._special.sub(defuse, m.content)} for m in messages]

    def _identity_of(self, served: str, asked: ModelIdentity) -> ModelIdentity:
        """Who the server says answered: its base model, or an adapter on it."""
        base = self._base.id if self._base is not None else asked.model
        return replace(asked, model=base, adapter=None if served == base else served)

    # -- adapters ------------------------------------------------------------------------------

    def swap_adapter(self, version: str | None, path: Path | None) -> ModelIdentity:
        """Serve adapter `version` (None: the base model) from the next reply on.

        The version is checked here (files and checksums, the base model it was trained on), loaded
        into the server under its name unless it is there already, and then proven with a short greedy
        answer. A version the server refuses raises ModelError and the one serving keeps serving; an
        unreachable server raises ServerError.
        """
        if version is None:
            with self._lock:
                self._adapter, self._adapter_path = None, None
                self._identity = replace(self._identity, adapter=None)
                return self._identity
        if path is None:
            raise ModelError(f"adapter {version}: no directory given")
        return self._serve(version, path, verify=True)

    def load_alternate(self, version: str | None, path: Path | None) -> ModelIdentity | None:
        """Have the server answer replies asked with `alternate=True` with adapter `version` (blind A/B),
        loaded there beside the one serving and checked as a swap is; None forgets it. What serves is
        unchanged. Errors as `swap_adapter`."""
        if version is None:
            with self._lock:
                self._alternate = None
            return None
        if path is None:
            raise ModelError(f"adapter {version}: no directory given")
        if version == self._adapter:
            raise ModelError(f"adapter {version} is the version serving; it cannot also answer beside itself")
        self._load(version, path, verify=True)
        with self._lock:
            self._alternate = (version, path)
        log.info("answering A/B replies with %s beside %s", version, self._identity.label)
        return self.alternate

    def _serve(self, version: str, path: Path, *, verify: bool) -> ModelIdentity:
        self._load(version, path, verify=verify)
        with self._lock:
            if self._alternate is not None and self._alternate[0] == version:
                self._alternate = None  # the second version of A/B replies now serves
            self._adapter, self._adapter_path = version, path
            self._identity = replace(self._identity, adapter=version)
            log.info("serving %s from the model server at %s", self._identity.label, self.api.address)
            return self._identity

    def _load(self, version: str, path: Path, *, verify: bool) -> None:
        """Check the version's files and base model, load it into the server and prove it answers."""
        meta = check_files(path, verify=verify) or {}
        base = self.base
        trained = meta.get("base_model")
        trained_on = trained.get("name") if isinstance(trained, dict) else trained
        trained_path = trained.get("path") if isinstance(trained, dict) else None
        if trained_on and trained_on != base.id and (trained_path is None or trained_path != base.root):
            raise ModelError(f"adapter {version} was trained on {trained_on}, and the model server serves {base.id}")
        if self.api.load_adapter(version, self._server_path(path)):
            self.api.probe(version)  # loaded here: prove it answers (one found loaded was proven by its loader)

    def _server_path(self, path: Path) -> str:
        """Where the server reads an adapter directory: under `server_adapters_dir` when it is set."""
        if self._adapters_dir is not None:
            return str(self._adapters_dir / path.name)
        return str(path.expanduser().resolve())

    def close(self) -> None:
        self.api.close()
