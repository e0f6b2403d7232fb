"""Published adapter versions: the files (registry.py) and when running chats swap them in (watch.py)."""
