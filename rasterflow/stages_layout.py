"""layout stages (being written)."""
