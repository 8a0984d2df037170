"""The engine boundary: everything that knows Faust or aiokafka, and works around them.

Nothing outside this package imports faust or touches its internals; stages get plain
records (``Record``), tables (``Table``) and an ``Engine`` to register their agents,
timers and hooks with. docs/failure-semantics.md says what it guarantees.
"""

from segstream.streams.engine.agents import guarded
from segstream.streams.engine.app import Engine, faust_broker_credentials, use_event_loop
from segstream.streams.engine.readers import (
    READ_ERRORS,
    Batch,
    aiokafka_config,
    follow,
    follow_batches,
    read_all,
)
from segstream.streams.engine.records import TP, Record
from segstream.streams.engine.tables import Table

__all__ = [
    "READ_ERRORS",
    "TP",
    "Batch",
    "Engine",
    "Record",
    "Table",
    "aiokafka_config",
    "faust_broker_credentials",
    "follow",
    "follow_batches",
    "guarded",
    "read_all",
    "use_event_loop",
]
