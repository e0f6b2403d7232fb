"""Logging: a file log in the data dir; the terminal only gets what the commands print.

The ML libraries are chatty (progress bars, deprecation notes, kernel hints): their log records go
to the file (set it up before importing them), and the commands show their own progress instead.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import warnings
from pathlib import Path

_FORMAT = "%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"


def quiet_libraries() -> None:
    """Silence third-party progress bars and chatter; call before importing them."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(transformers|trl|peft|torch|bitsandbytes)\.")


def setup_logging(log_path: Path | None, *, verbose: bool = False) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        if getattr(handler, "_assistant", False):
            root.removeHandler(handler)
    if log_path is not None:
        try:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handler: logging.Handler = logging.handlers.RotatingFileHandler(
                log_path, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
            )
        except OSError:
            handler = logging.NullHandler()  # an unwritable data dir is reported by the store
        handler.setFormatter(logging.Formatter(_FORMAT))
        handler._assistant = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if log_path is None and not verbose:
        quiet = logging.NullHandler()  # keeps Python's last-resort handler from printing to stderr
        quiet._assistant = True  # type: ignore[attr-defined]
        root.addHandler(quiet)
    if verbose:
        console = logging.StreamHandler()
        console.setLevel(logging.INFO)
        console.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        console._assistant = True  # type: ignore[attr-defined]
        root.addHandler(console)
    logging.captureWarnings(True)
    for chatty in ("httpx", "httpx2", "httpcore", "httpcore2", "openai"):  # a line per request
        logging.getLogger(chatty).setLevel(logging.WARNING)
