"""The one exception hierarchy of onscreen: every error raised on purpose is one of these.

    OnscreenError                 base; its message is meant for a person
    ├── MediaError                input pixels we cannot or will not decode (corrupt, too big)
    ├── ModelError                a model cannot be loaded or run, or returned garbage
    │   └── WeightsError          a weights file is missing, unfetchable or fails its sha256
    ├── RulesError                advertiser rules that do not validate (``problems``: every
    │                             mistake as file:line: field: message)
    ├── RequestError              a request the server will not do, by its status:
    │   ├── InvalidArgument       the input is wrong (bad id, bad option, malformed message)
    │   ├── NotFound              names something the server does not have
    │   ├── FailedPrecondition    the server is not configured for it (no store, no media root)
    │   ├── Overloaded            more work than the bounded queues / pixel budget hold
    │   ├── DeadlineExceeded      the caller's deadline passed; the work was dropped
    │   ├── Unavailable           still loading, or shutting down
    │   └── Unimplemented         in the contract, not served by this server
    ├── PlacementStoreError       a store file that is not ours, locked past the wait, read-only
    ├── CatalogError              a catalog index directory or catalog file we cannot trust or use
    │                             (another model's space, a torn snapshot, a corrupt log record,
    │                             bad JSONL lines: ``problems`` lists them as line: message)
    ├── StartupError              the server cannot start (port in use, bad TLS file, bad key)
    └── ClientError               (serving.client) a call failed; ``code`` is the gRPC status

It lives in ``vision`` because ``vision`` is the bottom of the one-way dependency chain
(vision <- targeting <- serving): every package can import it. ``serving.rpc.status`` maps each
class to one gRPC status code in one table. A bare ``ValueError``/``TypeError`` from our own code
is a bug (INTERNAL), never blamed on the client: request checks raise ``InvalidArgument``.
"""

from __future__ import annotations

from dataclasses import dataclass


class OnscreenError(Exception):
    """Base of every error onscreen raises on purpose; its message is meant for a person."""


class MediaError(OnscreenError):
    """Media that cannot be decoded or breaks a decode limit. The message names the source."""


class ModelError(OnscreenError):
    """A model that cannot be loaded or run, or that returned something unusable."""


class WeightsError(ModelError):
    """A weights file that is missing, cannot be fetched, or does not match its sha256."""


@dataclass(frozen=True)
class RuleProblem:
    """One mistake in a rules directory, located as precisely as the YAML allows."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class RulesError(OnscreenError):
    """The rules directory does not validate; ``problems`` lists every mistake found."""

    def __init__(self, problems: list[RuleProblem]) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in rules"
        super().__init__(head + "\n" + "\n".join(f"  {p}" for p in self.problems))


class RequestError(OnscreenError):
    """A request that cannot be done; the subclass says why (and so its status code)."""


class InvalidArgument(RequestError):
    """The request itself is wrong: the message says which field and what is allowed."""


class NotFound(RequestError):
    """The request names something the server does not have (a media never scanned, a file)."""


class FailedPrecondition(RequestError):
    """The server is not configured for this request (no placement store, no media root)."""


class Overloaded(RequestError):
    """More work was offered than the bounded queues hold; the caller should back off."""


class DeadlineExceeded(RequestError):
    """The caller's deadline passed before the work ran; the work was dropped."""


class Unavailable(RequestError):
    """The server cannot take the request now: still loading models, or shutting down."""


class Unimplemented(RequestError):
    """The RPC or option is declared in the contract but not served by this server."""


class PlacementStoreError(OnscreenError):
    """The store file cannot be used: not a placement store, a newer schema, closed, read-only,
    or locked by another writer for longer than the store waits."""


class CatalogError(OnscreenError):
    """A visual-search catalog that cannot be used as it is: an index built by another model
    (space id or dimension differ), a snapshot whose files fail the manifest's checksums, a
    corrupt write-ahead-log record before the tail, or a catalog JSONL with bad lines.

    ``problems`` holds one ``"line N: message"`` string per bad JSONL line (empty otherwise), so
    a caller can report every bad line at once instead of the first one.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = list(problems or [])
        super().__init__(message + "".join(f"\n  {p}" for p in self.problems))


class StartupError(OnscreenError):
    """The server cannot start: a port in use, a TLS file missing or not PEM, an empty key."""
