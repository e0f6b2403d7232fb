"""Who may curate, shared by `assistant review`, `assistant feedback` and the chat app's review screen.

Curators are listed in the config (`curators`). An empty list means everyone may curate: the
single-user default, which `assistant doctor` points out.
"""

from __future__ import annotations

from assistant.errors import NotAllowedError
from assistant.settings import Settings


def may_curate(settings: Settings) -> bool:
    return not settings.curators or settings.user in settings.curators


def require_curator(settings: Settings) -> str:
    """The curating user's name, or a NotAllowedError saying who may curate."""
    if not may_curate(settings):
        raise NotAllowedError(
            f"{settings.user} is not a curator",
            hint=f"curators: {', '.join(settings.curators)}; an admin adds names to `curators` in config.toml",
        )
    return settings.user
