"""merge stages (being written)."""
