"""Who may curate, shared by `assistant review`, `assistant feedback`, `assistant forget`, the chat app's
review screen and promotion (`assistant models promote|rollback`, F2).

Curators are listed in the config (`curators`). An empty list means everyone may curate: the
single-user default, which `assistant doctor` points out. With a list, the curator is the OS login:
`--user`, ASSISTANT_USER or a config file's `user` naming someone else is refused, unless the admin
sets `allow_user_override = true` in the data dir's config.toml.
"""

from __future__ import annotations

from assistant.errors import NotAllowedError
from assistant.settings import Settings, login_name


def may_curate(settings: Settings) -> bool:
    if not settings.curators:
        return True
    return settings.user in settings.curators and (settings.allow_user_override or settings.user == login_name())


def require_curator(settings: Settings) -> str:
    """The curating user's name, or a NotAllowedError saying who may curate."""
    if not may_curate(settings):
        if settings.user in settings.curators:
            raise NotAllowedError(
                f"curating acts as the OS login ({login_name()}), not {settings.user}",
                hint="an admin allows --user and ASSISTANT_USER here with allow_user_override = true in the data dir's config.toml",
            )
        raise NotAllowedError(
            f"{settings.user} is not a curator",
            hint=f"curators: {', '.join(settings.curators)}; an admin adds names to `curators` in config.toml",
        )
    return settings.user
