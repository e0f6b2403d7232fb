"""The Textual chat app. Never imports torch at module level: models load in worker threads."""
