"""Every error segstream raises on purpose, in one place.

::

    SegstreamError                  base: catch this to catch ours
    ├── ConfigError                 a setting is invalid or missing
    │   └── PortInUse               a port a setting names cannot be listened on
    ├── KafkaUnavailable            the broker cannot be reached or refused an admin call
    ├── RedisUnavailable            Redis cannot be reached
    ├── UnknownUser                 no segment is stored for that user
    ├── ReplayError                 an input file cannot be read as asked (bad map, format)
    ├── NoSegments                  no model published in the namespace yet (report)
    └── NeedsCheckout               a command needs the source checkout (dev, bench)

Each message says what went wrong and what to do about it. Bad *events* are not
errors: they are dead-lettered with a reason (see ``segstream.schemas.parse``).

The CLI turns each into one line and an exit code: ``EXIT_CONFIG`` for a
``ConfigError``, ``EXIT_FAILURE`` for the others. A worker that crashed exits
``EXIT_CRASHED``, so that its supervisor starts it again.
"""

from __future__ import annotations

EXIT_FAILURE = 1
EXIT_CONFIG = 2  # also a bad command line (typer's own usage errors)
EXIT_CRASHED = 70  # EX_SOFTWARE: a task or agent of the worker crashed


class SegstreamError(Exception):
    """Base class of segstream's own errors."""


class ConfigError(SegstreamError):
    pass


class PortInUse(ConfigError):
    def __init__(self, host: str, port: int, setting: str, detail: str) -> None:
        super().__init__(
            f"cannot listen on {host}:{port} ({detail}); another process, such as a second "
            f"worker on this machine, may hold it. Set {setting} to a free port (0: do not "
            "serve it)."
        )


class NeedsCheckout(SegstreamError):
    def __init__(self, command: str, what: str) -> None:
        super().__init__(
            f"`segstream {command}` needs a source checkout of segstream ({what}), which an "
            "installed package does not carry. Clone the repository and run it from there "
            "(`pip install -e .` in the clone)."
        )


class KafkaUnavailable(SegstreamError):
    def __init__(self, bootstrap: str, detail: str) -> None:
        super().__init__(
            f"Kafka at {bootstrap} is not available ({detail}). Start the local servers with "
            "`segstream dev up`, or set SEGSTREAM_KAFKA_BOOTSTRAP to your cluster."
        )


class RedisUnavailable(SegstreamError):
    def __init__(self, url: str, detail: str) -> None:
        super().__init__(
            f"Redis at {url} is not available ({detail}). Start the local servers with "
            "`segstream dev up`, or set SEGSTREAM_REDIS_URL."
        )


class UnknownUser(SegstreamError):
    def __init__(self, user: str) -> None:
        super().__init__(f"no segment stored for user {user!r} (not seen yet, or erased)")


class ReplayError(SegstreamError):
    pass


class NoSegments(SegstreamError):
    def __init__(self, namespace: str) -> None:
        super().__init__(
            f"no segments in namespace {namespace!r} yet, so there is nothing to report. "
            "Run `segstream worker` on some events (or `segstream demo`) until a model is "
            "published, or set SEGSTREAM_NAMESPACE to the namespace you mean."
        )
