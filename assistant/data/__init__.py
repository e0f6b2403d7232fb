"""Dataset building: pure, deterministic functions from a database snapshot to training files. Must not import torch or textual."""
