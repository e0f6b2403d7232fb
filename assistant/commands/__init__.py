"""Command groups of the `assistant` CLI, one module each."""
