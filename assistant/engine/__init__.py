"""Chat backends behind one small interface (base.py); the in-process transformers one (local.py)."""

from assistant.engine.base import Backend, ChatMessage, GenerationParams, ModelIdentity, Reply, ReplyStats

__all__ = ["Backend", "ChatMessage", "GenerationParams", "ModelIdentity", "Reply", "ReplyStats"]
