"""`assistant retrain`: QLoRA with TRL on the curated dataset, an eval gate, versioned publishing.

config.py (what to train, resolved from settings), preflight.py (checks before heavy work), loop.py
(the SFTTrainer run: checkpoints, resume, non-finite abort, metrics), gate.py (candidate vs active vs
base), retrain.py (the whole run, under a lock). The chat templates that mark what trains live in
assistant/chat_templates.py (the demo builder uses them too); the 4-bit configuration in
assistant/quantization.py (serving uses it too). Never imports textual.
"""
