"""The model server a team runs: vLLM in its own cached virtualenv (environment.py), started by
`assistant serve` (process.py). Chats talk to it through engine/remote.py."""
