"""The exceptions recausal raises for anything a user can get wrong."""

from __future__ import annotations


class RecausalError(Exception):
    """Base class of every error recausal raises on purpose."""


class InvalidInputError(RecausalError, ValueError):
    """An argument has a value recausal cannot work with (the message names it)."""


class UnknownItemError(InvalidInputError, KeyError):
    """A history names an item token the model does not know."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownUserError(InvalidInputError, KeyError):
    """A user id is not in the model's dataset."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class EmptyHistoryError(InvalidInputError):
    """A history has no items."""


class BundleError(RecausalError):
    """A model bundle is missing, corrupt, or unsafe to load."""


class UnsupportedModelError(RecausalError):
    """The model family is not supported for the requested operation."""


class MissingExtraError(RecausalError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


def require_extra(module: str, extra: str):
    """Import ``module``, or raise :class:`MissingExtraError` naming the extra to install."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{module!r} is needed for this; install it with: pip install 'recausal[{extra}]'"
        ) from exc


class RecausalWarning(UserWarning):
    """Something was adjusted on the user's behalf (e.g. a long history was truncated)."""


class OutputError(InvalidInputError):
    """A file or folder cannot be written where asked (the message names the path and why)."""
