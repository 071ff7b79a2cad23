"""Errors the user can act on. The CLI prints them as one line, without a traceback."""


class HiFiGANError(Exception):
    """Base of every error that names a user's file, setting or input and what is wrong."""


class ConfigError(HiFiGANError, ValueError):
    """A configuration that cannot describe a working model or run."""


class CheckpointError(HiFiGANError, ValueError):
    """A checkpoint that cannot be read or does not fit the model."""


class DataError(HiFiGANError, ValueError):
    """Audio or mel input that cannot be used (unreadable, wrong shape, not finite...)."""


def first_line(exc: BaseException) -> str:
    """An exception's message as one line (its first), or its type's name when it has none."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
