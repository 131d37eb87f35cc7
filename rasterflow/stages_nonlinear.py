"""nonlinear stages (being written)."""
