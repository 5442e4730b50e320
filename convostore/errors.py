"""The library's exceptions: one base class so callers (and the CLI) can catch ours alone."""

from __future__ import annotations


class ConvostoreError(Exception):
    """Base class. The CLI prints these as a one-line error and exits non-zero."""


class NotFoundError(ConvostoreError, LookupError):
    """An id that is not in the store."""


class AmbiguousIdError(NotFoundError):
    """An id prefix that names more than one interaction (or is too short to trust); lists candidates."""

    def __init__(self, message: str, candidates: list[str]) -> None:
        self.candidates = candidates
        super().__init__(message)


class ChainCycleError(ConvostoreError):
    """Parent links that loop: the chain cannot be walked to a root."""


class StoreError(ConvostoreError):
    """The database cannot be opened, read or written."""


class ImportFormatError(ConvostoreError):
    """A malformed import file; carries the 1-based line number."""

    def __init__(self, message: str, line: int | None = None) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}" if line is not None else message)


class WireFormatError(ConvostoreError, ValueError):
    """A payload that is neither API generation's shape."""


class MissingAPIKeyError(ConvostoreError):
    """No GEMINI_API_KEY / GOOGLE_API_KEY for a command that calls the API."""


class ImportFieldError(ImportFormatError):
    """A line whose field breaks the line format: carries the line and the field's path."""

    def __init__(self, message: str, line: int | None, path: str) -> None:
        self.path = path
        super().__init__(message, line)


class ImportConflictError(ConvostoreError):
    """Ids already stored with different content, under ``on_conflict="fail"``."""

    def __init__(self, count: int, ids: list[str]) -> None:
        self.count = count
        self.ids = ids
        more = ", …" if count > len(ids) else ""
        super().__init__(
            f"{count} id{'s' if count != 1 else ''} already stored with different content "
            f"({', '.join(ids)}{more}); nothing imported: --on-conflict skip keeps the stored rows, "
            "replace takes the file's"
        )


class SdkCompatibilityError(ConvostoreError, TypeError):
    """A google-genai release whose private HTTP seam moved: recording would be silent."""
