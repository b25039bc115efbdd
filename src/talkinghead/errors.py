"""The one base class of errors a user can act on.

Everything that goes wrong because of what the user gave (a missing or unreadable file, a
bad option, weights of another model, a GPU that is not there) raises a subclass of
:class:`TalkingHeadError` whose message names the file or option, what is wrong and what to
do. The command line prints those as one line; any other exception is a bug and keeps its
traceback.

The subclasses below also derive from the built-in exception that fits, so library users
can keep catching ``ValueError`` or ``FileNotFoundError``.
"""

from __future__ import annotations


class TalkingHeadError(Exception):
    """Base of every user-facing error (the CLI prints its message, without a traceback)."""


class InvalidInputError(TalkingHeadError, ValueError):
    """An option, argument or input file whose value cannot be used."""


class InputNotFoundError(TalkingHeadError, FileNotFoundError):
    """A file or folder the user named does not exist."""


class MissingDependencyError(TalkingHeadError, ImportError):
    """An optional package a feature needs is not installed (the message says how to install it)."""


class DeviceError(TalkingHeadError, RuntimeError):
    """A device was asked for that this machine does not have."""


class OutputExistsError(TalkingHeadError, FileExistsError):
    """An output path is taken and the command was not allowed to replace it."""


class UnknownNameError(TalkingHeadError, KeyError):
    """A name (weights asset, metric, baseline) that is not registered; the message lists the known ones."""

    def __str__(self) -> str:  # KeyError's own str() would quote the message
        return str(self.args[0]) if self.args else ""
