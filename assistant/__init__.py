"""assistant: a local support chatbot that learns from its users' feedback."""

__version__ = "0.1.0"
