"""cxrzoo."""
