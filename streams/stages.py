"""What each agent does with one batch: load state, call models/, write effects.

No business rule lives here: parsing is ``schemas.parse``, routing and linking
``models.identity``, profile updates ``models.profiles``, learning
``models.trainer``. These functions only move data between Kafka, the tables
and Redis, in the order that makes replays harmless (see ``streams.app``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from segstream.models import checkpoint, erasure
from segstream.models.features import Profile, applied, fold
from segstream.models.health import value_of
from segstream.models.identity import Out, link, resolve
from segstream.models.profiles import assign, handle
from segstream.schemas.events import Event
from segstream.schemas.records import AuditEntry, Erasure, SegmentChange, SegmentRecord
from segstream.streams import metrics
from segstream.streams.app import Pipeline
from segstream.streams.engine import Record, follow

log = logging.getLogger("segstream.worker")
RESCORE_PAUSE_MAX_S = 0.05
EFFECTS_CHUNK = 200  # users whose effects go out together while the next are computed


async def identity_batch(p: Pipeline, batch: list[Record]) -> None:
    """Resolve aliases to profiles and record links (table ``aliases``)."""
    await p.erasures_loaded.wait()  # the suppression list, read whole once at start
    started = time.perf_counter()
    local: dict[bytes, bytes | None] = {}
    changed: dict[bytes, bytes | None] = {}
    items, records = p.unpacked(batch, "identity")
    sent: list[Out] = []
    for item in items:
        alias = item.key
        key = alias.encode()
        try:
            value = item.record
            if key not in local:
                local[key] = p.aliases.get(key)
            current = local[key]
            entry = current.decode() if current else None
            if erasure.suppressed(value, alias, p.erased):
                metrics.SUPPRESSED.labels("identity").inc()
                continue
            if value["k"] == "erase":
                outs = erasure.at_identity(entry, alias, value)
                p.erased.add(alias)
                if current is not None:
                    local[key] = changed[key] = None  # the alias's link goes
            elif value["k"] == "event":
                outs = p.links.fresh(resolve(entry, alias, value["e"]))
            elif value["k"] == "link":
                result = link(entry, alias, value["to"])
                if result.conflict:
                    metrics.IDENTITY_CONFLICTS.inc()
                if result.entry is not None:
                    local[key] = changed[key] = result.entry.encode()
                outs = result.outs
            else:
                raise ValueError(f"unknown record kind {value['k']!r}")
            sent += outs
            records.extend(p.out_record(o, item.src) for o in outs)
        except Exception as exc:
            log.exception("identity failed on %s", item.key)
            records.append(
                p.item_letter("identity", item, "processing_error", type(exc).__name__, "identity")
            )
    await p.send(records)
    p.links.remember(sent)
    await p.write_table(p.aliases, changed)
    metrics.BATCH_SECONDS.labels("identity").observe(time.perf_counter() - started)


def load_profile(p: Pipeline, key: bytes) -> Profile | None:
    """The profile in the table, decoded (kept decoded between batches for hot users).
    The object may be the cache's: the profile stage folds events into it in place under
    the batch lock (and puts back what it wrote); everything else changes it only
    through the pure functions, which copy."""
    cached = p.decoded.get(key)
    if cached is not None:
        return cached
    raw = p.profiles.get(key)
    return Profile.from_dict(orjson.loads(raw)) if raw else None


class Effects:
    """What a batch of profile updates must write, collected before anything is written."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes | None, bytes | None]] = []
        self.writes: list[SegmentRecord] = []
        self.deletes: list[tuple[str, str | None]] = []
        self.table: dict[bytes, bytes | None] = {}


def segment_effects(
    p: Pipeline, key: bytes, state: Profile, raw: dict[str, float], fx: Effects
) -> tuple[Profile, bool]:
    """Assign ``state`` (raw features ``raw`` at the watermark) and queue what follows.

    Returns the state with its segment and whether the segment changed; writing the
    state to the table is the caller's call.
    """
    snap = p.snapshot
    if snap is None:
        return state, False
    x = p.space.transform(raw)
    updated, change, scores = assign(state, snap, x, p.settings.hysteresis)
    value = value_of(updated)
    record = SegmentRecord(
        profile=state.key,
        segment=updated.segment if updated.segment is not None else -1,
        version=snap.version,
        seq=updated.seq,
        updated_ms=updated.last_seen_ms,
        scores=scores,
        features={k: round(v, 4) for k, v in raw.items()},
        email_sha256=updated.email_sha256,
        consent_marketing=updated.consent_marketing,
        revenue=round(value.revenue, 2),
        converted=value.converted,
        ad_cost=round(value.ad_cost, 2),
    )
    fx.writes.append(record)
    fx.records.append(("segments", key, record.to_json()))
    if change is not None:
        metrics.SEGMENT_CHANGES.inc()
        sc = SegmentChange(
            id=SegmentChange.make_id(
                change.profile, change.old, change.new, change.seq, change.version
            ),
            profile=change.profile,
            old=change.old,
            new=change.new,
            version=change.version,
            seq=change.seq,
            at_ms=change.at_ms,
            emitted_ms=int(time.time() * 1000),
        )
        fx.records.append(("segment-changes", key, sc.to_json()))
    return updated, change is not None


def erase_effects(
    p: Pipeline, key: bytes, state: Profile | None, record: dict[str, Any], fx: Effects
) -> None:
    """An erased profile: out of the table, the live view and the compacted topics, with
    an audit entry (also when nothing was held, for the alias a request named)."""
    profile = key.decode()
    p.erased.add(profile)  # at once: records in flight behind the command are dropped
    fx.table[key] = None
    fx.deletes.append((profile, None))
    fx.records += [("segments", key, None), ("training", key, None)]
    if state is None and (record.get("cascade") or profile != record["alias"]):
        return  # a cascade reaching what is already gone: nothing to report
    if state is not None:
        metrics.ERASED.inc()
    detail = {
        "request": record["alias"],
        "found": state is not None,
        "merged_into": state.merged_into if state else None,
        "linked_profiles": len(state.absorbed) if state else 0,
        "deleted": ["profiles table", "redis view", "segments topic", "training topic"],
    }
    entry = AuditEntry("erased", profile, int(time.time() * 1000), profile, detail)
    fx.records.append(("audit", key, entry.to_json()))


async def apply_effects(p: Pipeline, fx: Effects, rescore: bool = False) -> None:
    """Make a batch's effects durable, before its input offsets are acknowledged.

    Redis first: a segment record Redis refuses (it holds a newer one, written by the
    partition's new owner or a newer model) goes neither to the ``segments`` topic nor to
    ``segment-changes``, so the topic's latest record per user stays the one Redis
    holds. Then the records, then the table's changelog. A crash in between replays the
    batch: Redis takes an equal record again, and the rest follows.

    A ``rescore`` changes only assignments: a profile whose record Redis refuses was
    read older than the one Redis holds, and writing it back to the changelog would
    move the table back in time. So it is not written. (A batch of events writes its
    state all the same: its events are in it, and replays bring the rest.)
    """
    accepted = await p.redis_retry(p.writer.accepted, fx.writes, fx.deletes)
    stale = {r.profile.encode() for r, ok in zip(fx.writes, accepted, strict=True) if not ok}
    if stale:
        metrics.STALE_WRITES.inc(len(stale))
    await p.send(
        r for r in fx.records if not (r[0] in ("segments", "segment-changes") and r[1] in stale)
    )
    metrics.REDIS_WRITES.inc(len(accepted) - len(stale))
    table = {k: v for k, v in fx.table.items() if k not in stale} if rescore else fx.table
    await p.write_table(p.profiles, table)


async def profile_batch(p: Pipeline, batch: list[Record]) -> None:
    """Fold events into profiles (table ``profiles``), assign segments, write the view."""
    await p.erasures_loaded.wait()  # the suppression list, read whole once at start
    started = time.perf_counter()
    window = p.settings.dedupe_window
    async with p.lock:
        local: dict[bytes, Profile | None] = {}
        dirty: dict[bytes, bool] = {}  # key -> went away (merged)
        owned: set[bytes] = set()  # keys whose state this batch may change in place
        fx = Effects()
        stamps: list[tuple[int, int | None]] = []  # (event time, ingest time) of each event
        items, letters = p.unpacked(batch, "profiles")
        fx.records.extend(letters)
        for item in items:
            key = item.key.encode()
            try:
                record = item.record
                if record["k"] == "event":
                    stamps.append((record["e"]["ts_ms"], record["e"].get("ingest_ms")))
                if erasure.suppressed(record, item.key, p.erased):
                    metrics.SUPPRESSED.labels("profiles").inc()
                    continue
                if key not in local:
                    # a state loaded here is this batch's own (the table holds JSON, the
                    # decoded cache is read under the same lock): events fold into it
                    local[key] = state = load_profile(p, key)
                    if state is not None and not state.merged_into:
                        owned.add(key)
                if key in owned and record["k"] == "event":
                    if fold_owned(local[key], record, str(item.partition), item.position, window):
                        dirty[key] = dirty.get(key, False)
                    continue
                step = handle(
                    local[key],
                    item.key,
                    record,
                    offset_key=str(item.partition),
                    offset=item.position,
                    window=window,
                )
                if step.erased:
                    erase_effects(p, key, local[key], record, fx)
                    local[key] = None
                    dirty.pop(key, None)
                    owned.discard(key)
                    fx.records.extend(p.out_record(o, item.src) for o in step.outs)
                    continue
                if step.state is None and record["k"] == "event" and not step.outs:
                    metrics.DUPLICATES.inc()
                if step.state is not None:
                    before = local[key]
                    if (
                        record["k"] == "event"
                        and before is not None
                        and step.state.late_events > before.late_events
                    ):
                        metrics.LATE.inc()
                    local[key] = step.state
                    dirty[key] = dirty.get(key, False) or step.gone
                    if record["k"] == "event":  # ``apply`` made a copy: fold the rest into it
                        owned.add(key)
                    else:
                        owned.discard(key)
                fx.records.extend(p.out_record(o, item.src) for o in step.outs)
            except BatchFailed:
                raise
            except Exception as exc:
                log.exception("profile update failed for %s", item.key)
                fx.records.append(
                    p.item_letter(
                        "events", item, "processing_error", type(exc).__name__, "profiles"
                    )
                )
        states = [s for s in local.values() if s is not None and not s.merged_into]
        p.watermark_ms = max([p.watermark_ms, *(s.last_seen_ms for s in states)])
        now = p.watermark_ms  # one "now" for the whole batch
        written: dict[bytes, Profile] = {}
        # the effects go out in chunks of users while the next chunk is computed: each
        # user is in one chunk, so per user the order (Redis, records, changelog) holds
        effects = [asyncio.ensure_future(apply_effects(p, fx))]  # letters, merges, erasures
        chunk = Effects()
        for key, gone in dirty.items():
            state = local[key]
            assert state is not None  # dirty keys always hold a state
            if state.merged_into:
                if gone:
                    chunk.deletes.append((state.key, state.merged_into))
                    chunk.records += [("segments", key, None), ("training", key, None)]
            elif state.events == 0:
                pass  # only linked aliases so far (``linked``): nothing to segment yet
            else:
                raw = p.space.raw(state, now)  # once: training sample, vector, record
                chunk.records.append(("training", key, orjson.dumps({"raw": raw, "as_of": now})))
                try:
                    state, _ = segment_effects(p, key, state, raw, chunk)
                except Exception:  # keep the features; the next event or rescore assigns again
                    metrics.ASSIGN_ERRORS.inc()
                    log.exception("segment assignment failed for %s", key)
            chunk.table[key] = state.to_json()
            written[key] = state
            if len(chunk.table) >= EFFECTS_CHUNK:
                effects.append(asyncio.ensure_future(apply_effects(p, chunk)))
                chunk = Effects()
                await asyncio.sleep(0)  # its first writes go out before the next chunk
        if chunk.table:
            effects.append(asyncio.ensure_future(apply_effects(p, chunk)))
        await asyncio.gather(*effects)  # every effect durable before the batch is acked
        for key, state in written.items():  # decoded as written: the next batch skips JSON
            p.decoded.put(key, state)
    observe_latency(stamps)
    metrics.BATCH_SECONDS.labels("profiles").observe(time.perf_counter() - started)


def fold_owned(
    state: Profile | None, record: dict[str, Any], offset_key: str, offset: int, window: int
) -> bool:
    """An event of a user whose state this batch owns (decoded for it, or copied by
    ``apply``; never a merged one: any record but an event ends the ownership): folded
    into that state in place, not copied (``features.fold``); True when it was new.

    An event that cannot be read is refused before anything changes (its item is
    dead-lettered); ``fold`` itself reads only a validated event, and an exception in it
    stops the batch (``guarded``) rather than leave a half-folded state to be written."""
    assert state is not None  # owned keys always hold a state
    event = Event.from_dict(record["e"])
    if applied(state, event, offset_key, offset):
        metrics.DUPLICATES.inc()
        return False
    late = state.late_events
    try:
        fold(state, event, offset_key=offset_key, offset=offset, window=window)
    except Exception as exc:
        raise BatchFailed(f"folding an event into {state.key} failed") from exc
    if state.late_events > late:
        metrics.LATE.inc()
    return True


class BatchFailed(RuntimeError):
    """A batch cannot go on without leaving a half-changed state: it is replayed."""


def observe_latency(stamps: list[tuple[int, int | None]]) -> None:
    """Event time and ingest time to now, when the batch's segments are in Redis."""
    now_ms = time.time() * 1000
    metrics.WRITE_LATENCY.observe("event", [max(0.0, now_ms - ts) / 1000 for ts, _ in stamps])
    metrics.WRITE_LATENCY.observe(
        "ingest", [max(0.0, now_ms - i) / 1000 for _, i in stamps if i is not None]
    )


def batch_done() -> None:
    """After a batch: work goes on (``ProcessingStalled`` watches this)."""
    metrics.LAST_BATCH.set_to_current_time()


async def rescore_forever(p: Pipeline, chunk: int = 100) -> None:
    """Whenever a new snapshot arrives, re-assign every local profile with it.

    Never while a rebalance restores the tables: half-way through its changelog a
    profile holds an older state, and its rescore would write that state back as the
    newest. The end of the recovery sets ``snapshot_changed`` again.
    """
    while True:
        await p.snapshot_changed.wait()
        p.snapshot_changed.clear()
        snap = p.snapshot
        if snap is None or not p.tables_ready:
            continue  # no model yet, or tables being restored: the rebalance's end calls again
        keys = p.profiles.keys()
        moved = 0
        for i in range(0, len(keys), chunk):
            if p.snapshot is not snap or not p.tables_ready:
                break  # a newer model came, or a rebalance began: the loop starts over
            started = time.perf_counter()
            async with p.lock:
                if p.engine.should_stop:
                    return  # the producer goes next: start nothing that cannot finish
                if not p.tables_ready:
                    break
                fx = Effects()
                owned = p.owned_partitions()  # a partition given away: its new owner writes
                for key in keys[i : i + chunk]:
                    if p.partition_of(key) not in owned:
                        continue
                    state = load_profile(p, key)
                    if state is None or state.merged_into or state.events == 0:
                        continue
                    if state.segment_version == snap.version:
                        continue
                    after, changed = segment_effects(
                        p, key, state, p.space.raw(state, p.watermark_ms), fx
                    )
                    if changed:  # a version-only refresh is not worth a changelog record
                        fx.table[key] = after.to_json()
                        moved += 1
                await apply_effects(p, fx, rescore=True)
            # as long again for the agents: a rescore never has the loop to itself
            await asyncio.sleep(min(time.perf_counter() - started, RESCORE_PAUSE_MAX_S))
        log.info(
            "rescored %d profiles with model v%s (%d moved)",
            len(keys),
            snap.version,
            moved,
        )


async def follow_model(p: Pipeline) -> None:
    """Keep ``p.snapshot`` at the latest published model."""
    secret = p.settings.model_secret.get_secret_value().encode()
    async for _, value in follow(p.settings, p.settings.topic("model")):
        if value is None:
            continue
        try:
            snap, _ = checkpoint.decode(value, secret, with_learner=False)
        except checkpoint.CheckpointError as exc:
            log.error("ignoring model record: %s", exc)
            continue
        if p.snapshot is None or snap.version > p.snapshot.version:
            p.snapshot = snap
            # a restarted worker has seen no event yet: start from the trainer's event time
            p.watermark_ms = max(p.watermark_ms, snap.created_ms)
            metrics.MODEL_VERSION.set(snap.version)
            metrics.SEGMENTS.set(len(snap.segments))
            p.snapshot_changed.set()


async def dispatch_erasures(p: Pipeline, batch: list[Record]) -> None:
    """The ``erasures`` agent: each new request becomes an erase command at its alias's
    identity partition (a lifted one, a tombstone, only leaves the suppression list)."""
    records = []
    for m in batch:
        if m.value is None or m.key is None:
            continue
        try:
            e = Erasure.from_json(m.value)
        except Exception as exc:
            records.append(p.dead_letter(m, "malformed_erasure", type(exc).__name__, "erasures"))
            continue
        p.erased.add(e.alias)
        records.append(p.out_record(erasure.dispatch(e)))
    await p.send(records)


async def follow_erasures(p: Pipeline) -> None:
    """Keep ``p.erased`` equal to the ``erasures`` topic; stages wait for the first read."""
    erasures = p.settings.topic("erasures")
    async for key, value in follow(p.settings, erasures, True, p.erasures_loaded.set):
        if value is None:
            p.erased.discard(key.decode())
        else:
            p.erased.add(key.decode())
