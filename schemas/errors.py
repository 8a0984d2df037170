"""Every error segstream raises on purpose, in one place.

::

    SegstreamError                  base: catch this to catch ours
    ├── ConfigError                 a setting is invalid or missing
    ├── KafkaUnavailable            the broker cannot be reached or refused an admin call
    ├── RedisUnavailable            Redis cannot be reached
    ├── UnknownUser                 no segment is stored for that user
    ├── ReplayError                 an input file cannot be read as asked (bad map, format)
    └── NoSegments                  no model published in the namespace yet (report)

Each message says what went wrong and what to do about it. Bad *events* are not
errors: they are dead-lettered with a reason (see ``schemas.parse``).
"""

from __future__ import annotations


class SegstreamError(Exception):
    """Base class of segstream's own errors."""


class ConfigError(SegstreamError):
    pass


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
