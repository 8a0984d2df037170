"""``segstream triggers``: retargeting triggers from segment changes, delivered to webhooks.

Two stages in one Faust app (consumer group ``{ns}-triggers``), each at-least-once:

1. **rules**: ``segment-changes`` → :mod:`models.triggers` (per-user state in the
   ``trigger_state`` table; a timer fires triggers whose dwell time is over) →
   the ``retargeting`` topic, keyed by profile, each trigger with a deterministic id;
2. **delivery**: ``retargeting`` → every configured webhook, signed (Standard
   Webhooks), retried with exponential backoff and jitter; after the last attempt
   the trigger goes to the ``dlq`` topic (stage ``webhook``) with the reason.

A change delivered twice fires once (state remembers change ids); a trigger
delivered twice carries the same ``webhook-id``, so receivers dedupe on it.

Its metrics are served on ``SEGSTREAM_METRICS_HOST:SEGSTREAM_TRIGGERS_METRICS_PORT``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any
from wsgiref.simple_server import WSGIServer

import httpx
import orjson
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
)

from segstream.consumers.webhooks import deliver
from segstream.models.triggers import TriggerState, next_due, on_change, on_tick
from segstream.schemas.records import is_segment_event
from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.app import Runtime
from segstream.streams.engine import Record, guarded, use_event_loop

log = logging.getLogger("segstream.triggers")

# What the relay serves: its own counters and, of the worker's, those the relay's code
# moves too (dead letters, failed sends). Not the worker's others: a relay exporting
# segstream_last_batch_timestamp_seconds 0 would read as a worker that never finished a batch.
RELAY_REGISTRY = CollectorRegistry()
FIRED = Counter(
    "segstream_triggers_fired_total", "Triggers fired", ["rule"], registry=RELAY_REGISTRY
)
WEBHOOKS = Counter(
    "segstream_webhook_deliveries_total",
    "Webhook deliveries by outcome",
    ["outcome"],
    registry=RELAY_REGISTRY,
)
for _shared in (metrics.DLQ, metrics.KAFKA_SEND_ERRORS):
    RELAY_REGISTRY.register(_shared)
ProcessCollector(registry=RELAY_REGISTRY)
PlatformCollector(registry=RELAY_REGISTRY)
GCCollector(registry=RELAY_REGISTRY)
OUTCOMES = ("delivered", "failed")


def now_ms() -> int:
    return int(time.time() * 1000)


class TriggerRelay(Runtime):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings, f"{settings.namespace}-triggers")
        self.state = self.engine.table("trigger_state")
        self.rules = settings.trigger_rules
        self.due: dict[bytes, int] = {}  # users with pending triggers -> earliest due time
        self.indexed_generation = -1
        self.client: httpx.AsyncClient | None = None

    def load(self, key: bytes, local: dict[bytes, TriggerState]) -> TriggerState | None:
        if key in local:
            return local[key]
        raw = self.state.get(key)
        return TriggerState.from_dict(orjson.loads(raw)) if raw else None

    async def _commit(self, records: list[Any], local: dict[bytes, TriggerState]) -> None:
        """Triggers first (awaited), then the state that says they were fired."""
        await self.send(records)
        await self.write_table(self.state, {k: orjson.dumps(v.to_dict()) for k, v in local.items()})
        for key, state in local.items():
            due = next_due(state)
            if due is None:
                self.due.pop(key, None)
            else:
                self.due[key] = due

    def _records(self, key: bytes, fired: list[Any]) -> list[tuple[str, bytes, bytes]]:
        for t in fired:
            FIRED.labels(t.rule).inc()
        return [("retargeting", key, orjson.dumps(t.to_dict())) for t in fired]

    async def changes_batch(self, batch: list[Record]) -> None:
        async with self.lock:
            local: dict[bytes, TriggerState] = {}
            records: list[Any] = []
            now = now_ms()
            for m in batch:
                key = m.key or b""
                try:
                    change = orjson.loads(m.value or b"")
                    if is_segment_event(change):
                        continue  # a segment appeared or vanished: no user to trigger for
                    state, fired = on_change(self.load(key, local), change, self.rules, now)
                    local[key] = state
                    records += self._records(key, fired)
                except Exception as exc:
                    log.exception("bad segment change at offset %s", m.offset)
                    records.append(
                        self.dead_letter(m, "processing_error", type(exc).__name__, "triggers")
                    )
            await self._commit(records, local)

    async def tick(self) -> None:
        """Fire the dwell triggers that are due."""
        async with self.lock:
            generation = self.engine.generation
            if generation != self.indexed_generation:  # (re)build the index of pending users
                self.due = {}
                for key, raw in self.state.items():
                    due = next_due(TriggerState.from_dict(orjson.loads(raw)))
                    if due is not None:
                        self.due[key] = due
                self.indexed_generation = generation
            now = now_ms()
            local: dict[bytes, TriggerState] = {}
            records: list[Any] = []
            for key in [k for k, due in self.due.items() if due <= now]:
                state = self.load(key, local)
                if state is None:
                    self.due.pop(key, None)
                    continue
                state, fired = on_tick(state, key.decode(), self.rules, now)
                local[key] = state
                records += self._records(key, fired)
            if local:
                await self._commit(records, local)

    async def deliver_batch(self, batch: list[Record]) -> None:
        s = self.settings
        if not s.webhook_urls:
            return
        if self.client is None:
            self.client = httpx.AsyncClient(
                limits=httpx.Limits(max_connections=s.webhook_concurrency)
            )
        gate = asyncio.Semaphore(s.webhook_concurrency)
        secret = s.webhook_secret.get_secret_value()

        async def one(m: Record) -> list[Any]:
            async with gate:
                try:
                    msg_id = orjson.loads(m.value or b"")["id"]
                except Exception as exc:
                    return [self.dead_letter(m, "processing_error", type(exc).__name__, "webhook")]
                letters = []
                for url in s.webhook_urls:
                    assert self.client is not None
                    outcome = await deliver(
                        self.client,
                        url,
                        secret,
                        msg_id,
                        m.value or b"",
                        max_attempts=s.webhook_max_attempts,
                        backoff_s=s.webhook_backoff_s,
                        backoff_max_s=s.webhook_backoff_max_s,
                        timeout_s=s.webhook_timeout_s,
                    )
                    WEBHOOKS.labels("delivered" if outcome.delivered else "failed").inc()
                    if not outcome.delivered:
                        letters.append(
                            self.dead_letter(
                                m,
                                f"webhook_{outcome.reason}",
                                f"{url}: gave up after {outcome.attempts} attempts",
                                "webhook",
                            )
                        )
                return letters

        results = await asyncio.gather(*(one(m) for m in batch))
        await self.send([letter for letters in results for letter in letters])


def build(settings: Settings) -> TriggerRelay:
    r = TriggerRelay(settings)
    # unchecked: the continuity check reads the worker group's offsets, not the relay's
    r.engine.agent("segment-changes", "trigger-rules", r.changes_batch, checked=False)
    r.engine.agent("retargeting", "webhooks", r.deliver_batch, checked=False)

    @r.engine.timer(settings.triggers_tick_s)
    async def tick() -> None:
        await guarded("triggers", r.tick())

    return r


def serve_metrics(settings: Settings) -> WSGIServer | None:
    """The relay's ``/metrics`` (``triggers_metrics_port``; 0: not served), every rule's
    and outcome's counter exported at 0 from the start, so ``increase()`` sees the first."""
    for rule in settings.trigger_rules:
        FIRED.labels(rule.name)
    for outcome in OUTCOMES:
        WEBHOOKS.labels(outcome)
    return metrics.serve_metrics(
        settings, settings.triggers_metrics_port, RELAY_REGISTRY, "SEGSTREAM_TRIGGERS_METRICS_PORT"
    )


def run(settings: Settings, loglevel: str = "info") -> None:
    from segstream.streams.topics import ensure_topics

    serve_metrics(settings)  # first: a port that is taken ends the relay at once
    ensure_topics(settings)
    if not settings.trigger_rules:
        log.warning("no SEGSTREAM_TRIGGER_RULES: segment changes are read but nothing fires")
    relay = build(settings)
    use_event_loop(settings)
    relay.engine.run(loglevel)
