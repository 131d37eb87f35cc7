"""dense stages (being written)."""
