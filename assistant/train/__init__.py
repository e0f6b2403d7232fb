"""`assistant retrain`: QLoRA with TRL on the curated dataset, an eval gate, versioned publishing.

config.py (what to train, resolved from settings), templates.py (chat templates that mark what
trains), preflight.py (checks before heavy work), loop.py (the SFTTrainer run: checkpoints, resume,
non-finite abort, metrics), gate.py (candidate vs active vs base), retrain.py (the whole run,
under a lock). Never imports textual.
"""
