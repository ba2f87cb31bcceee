"""The one exception hierarchy of ratchet.

Every error ratchet raises on purpose derives from `RatchetError`, so callers
catch one type; the CLI alone maps them to exit codes and one-line messages,
the web app alone to HTTP statuses. The categories follow ML Metadata's:

    RatchetError
    ├── NotFound              a record, run, type or file that does not exist
    ├── AlreadyExists         a name taken, a run that already exists
    ├── InvalidArgument       a value of the wrong type or shape
    ├── FailedPrecondition    the world is not in a state that allows this
    │   └── StoreVersionError the store was migrated by a newer ratchet
    └── StoreError            the store or its files cannot be used
        └── CorruptedArtifact an artifact whose bytes no longer match its hash

Messages are one line and say what to do about it where that is known.
"""


class RatchetError(Exception):
    """Base of every error ratchet raises on purpose."""


class NotFound(RatchetError):
    """The thing asked for does not exist."""


class AlreadyExists(RatchetError):
    """A record with this identity already exists."""


class InvalidArgument(RatchetError):
    """An argument has the wrong type, shape or value."""


class FailedPrecondition(RatchetError):
    """The system is not in a state that allows the operation."""


class StoreVersionError(FailedPrecondition):
    """The metadata store was migrated by a newer version of ratchet."""


class StoreError(RatchetError):
    """The metadata or artifact store cannot be opened, read or written."""


class CorruptedArtifact(StoreError):
    """An artifact's content no longer matches its recorded sha256."""
