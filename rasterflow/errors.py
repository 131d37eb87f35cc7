"""Errors the tool reports to users (clear messages, no traceback)."""

__all__ = ["RasterflowError", "SpecError", "InputError"]


class RasterflowError(Exception):
    """Base of every error the CLI reports as ``error: <message>`` with exit status 2."""


class SpecError(RasterflowError, ValueError):
    """An invalid spec. ``field`` names the offending key, e.g. ``stage[1].kernel``."""
    def __init__(self, field, message):
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")

    def within(self, prefix):
        return SpecError(f"{prefix}.{self.field}", self.message)


class InputError(RasterflowError, ValueError):
    """An image, array or model file that does not fit the spec or cannot be read."""
