"""pooling stages (being written)."""
