"""The trainer: keeps the population, publishes models, and reports on the model (drift,
quality, segment health). It runs in a process of its own beside each worker
(``streams.trainer_process``), and trains while that process holds the training lease."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from prometheus_client import Gauge

from segstream.consumers.redis_view import SegmentWriter
from segstream.models import checkpoint
from segstream.models.drift import DriftMonitor
from segstream.models.features import FeatureSpace, feature_space, lifetime_free
from segstream.models.health import Health
from segstream.models.naming import profiles as segment_profiles
from segstream.models.segments import SegmentLearner, Snapshot
from segstream.models.trainer import Report, Trainer
from segstream.schemas.records import SegmentEvent
from segstream.schemas.settings import Settings
from segstream.streams import metrics
from segstream.streams.engine.readers import follow_batches, read_all
from segstream.streams.lag import Offsets
from segstream.streams.outputs import Outputs

log = logging.getLogger("segstream.worker")
LEARN_SLICE = 100  # draws: about 5 ms of the trainer's loop, then its other tasks run
INPUTS = ("web", "ad", "crm", "identity", "events")  # what the population is built from
OWNER_CHECK_S = 1.0  # how often a trainer that does not train looks whether it should


class TrainerRuntime(Outputs):
    """What the trainer sends and writes with: the sender, Redis, the feature space."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        s = settings
        self.space: FeatureSpace = feature_space(
            s.features, s.paid_channels, s.social_channels, s.email_channels
        )
        self.redis = aioredis.from_url(s.redis_url.get_secret_value())
        self.writer = SegmentWriter(self.redis, s)


class TrainerStage:
    """Trains while ``owns()`` (the trainer process holds the training lease; one of the
    workers' trainers does): resumes the model from its last checkpoint, reads the
    compacted ``training`` topic whole with a plain consumer, then follows it, learns,
    and publishes model versions. ``mark(position)`` records how far it has read (for
    the lag figures; nothing resumes from it)."""

    def __init__(
        self,
        p: TrainerRuntime,
        offsets: Offsets,
        owns: Callable[[], bool],
        mark: Callable[[int], None],
    ) -> None:
        self.p = p
        self.owns = owns
        self.mark = mark
        self.trainer: Trainer | None = None
        self.ready = False  # the population is read whole: cycles may publish
        self.lock = asyncio.Lock()
        s = p.settings
        self.offsets = offsets
        self.inputs = [(s.topic(t), n) for t in INPUTS for n in range(s.partitions)]
        self.training_lag = 0  # samples not yet observed (the follower's own position)

    def _new_learner(self) -> SegmentLearner:
        s = self.p.settings
        return SegmentLearner(
            s.features, s.clusterer, seed=s.seed, max_distance=s.match_max_distance
        )

    async def run(self) -> None:
        """Forever: train while this worker owns the training, stand by otherwise."""
        while True:
            if not self.owns():
                await self.release()
                await asyncio.sleep(OWNER_CHECK_S)
                continue
            await self.p.kafka_retry(self.follow)

    async def release(self) -> None:
        """Another worker trains now: drop the trainer (restored again if it comes back)."""
        async with self.lock:
            if self.trainer is not None:
                forget_model_series()
            self.trainer, self.ready = None, False

    async def follow(self) -> None:
        """Resume the model, then read the training topic whole and follow it while this
        worker owns the training."""
        s = self.p.settings
        trainer = self.new_trainer(await self.last_learner())
        async with self.lock:
            self.trainer, self.ready = trainer, False
        async for batch in follow_batches(s, s.topic("training")):
            if not self.owns():
                return  # ``run`` releases the trainer
            self.training_lag = batch.lag
            async with self.lock:
                for offset, key, value in batch.records:
                    try:
                        self.observe(trainer, key, value)
                    except Exception as exc:
                        log.exception("bad training record at offset %s", offset)
                        where = (s.topic("training"), 0, offset)
                        reason = type(exc).__name__
                        letter = self.p.letter(
                            where, key, value, "processing_error", reason, "trainer"
                        )
                        await self.p.send([letter])
                self.mark(batch.position)  # for the lag figures: the lease commits it
                if not batch.caught_up:
                    continue
                if not self.ready:
                    self.ready = True
                    metrics.MODEL_OWNER.set(1)
                    log.info("trainer resumed: %s", trainer.state())
                if trainer.pending >= s.publish_every_samples:
                    await self._publish(caught_up=False)  # mid-flow: drift waits for a tick
                elif trainer.unlearned >= s.learn_every_samples:
                    await learn_in_slices(trainer, trainer.learn_per_cycle)

    async def last_learner(self) -> SegmentLearner:
        """The learner of the last published checkpoint (a fresh one, keeping versions
        and ids, when it cannot be resumed)."""
        s = self.p.settings
        last = None
        async for _, value in read_all(s, s.topic("model")):
            last = value if value is not None else last
        learner = self._new_learner()
        if last is None:
            return learner
        secret = s.model_secret.get_secret_value().encode()
        try:
            snap, _ = checkpoint.decode(last, secret, with_learner=False)
            learner.published = snap  # at least: versions and segment ids go on
            _, resumed = checkpoint.decode(last, secret)
            if resumed is not None:
                learner = resumed
                learner.published = snap
        except checkpoint.CheckpointError as exc:
            log.error(
                "model checkpoint not resumed (%s); learning again from the "
                "population, keeping versions and ids",
                exc,
            )
        return learner

    def new_trainer(self, learner: SegmentLearner) -> Trainer:
        s = self.p.settings
        return Trainer(
            self.p.space,
            learner,
            seed=s.seed,
            drift=DriftMonitor(
                s.drift_features or lifetime_free(s.features),
                feature_threshold=s.drift_feature_psi,
                segment_threshold=s.drift_segment_psi,
                centroid_threshold=s.drift_centroid_shift,
                confirm=s.drift_confirm,
            ),
            quality_sample=s.quality_sample,
        )

    @staticmethod
    def observe(trainer: Trainer, key: bytes, value: bytes | None) -> None:
        if value is None:
            trainer.forget(key.decode())
            return
        sample = orjson.loads(value)
        trainer.observe(key.decode(), sample["raw"], int(sample["as_of"]))

    async def tick(self) -> None:
        caught_up = self.ready and await self._caught_up()  # outside the lock
        async with self.lock:
            trainer = self.trainer
            if trainer is None or not self.ready:
                return  # not the owner, or the population is still being read
            if trainer.pending or trainer.unsettled:
                await self._publish(caught_up)
            elif caught_up and (report := trainer.idle_check()) and trainer.learner.published:
                await self._report(trainer.learner.published, report)

    async def _caught_up(self) -> bool:
        """Is the group at most ``drift_max_lag`` records behind on all its inputs (the
        training samples not yet observed included)?"""
        try:
            positions = await self.offsets.read_async(self.inputs)
        except Exception as exc:  # Kafka unreachable: judge drift later
            log.warning("could not read the group's offsets: %s", exc)
            return False
        behind = sum(p.lag for p in positions.values()) + self.training_lag
        return behind <= self.p.settings.drift_max_lag

    async def _publish(self, caught_up: bool) -> None:
        assert self.trainer is not None
        trainer, secret = self.trainer, self.p.settings.model_secret.get_secret_value().encode()

        if trainer.users:
            await learn_in_slices(trainer, trainer.cycle_draws())

        def cycle() -> tuple[Snapshot, bytes, dict[int, dict[str, Any]]] | None:
            snap = trainer.cycle(caught_up=caught_up, learned=True)
            if snap is None:
                return None
            value = checkpoint.encode(snap, trainer.learner, secret)
            return snap, value, segment_profiles(snap, self.p.space)

        # the snapshot, drift and silhouette: in a thread, so the event loop keeps serving
        # the other agents (the trainer's lock is held meanwhile)
        done = await asyncio.to_thread(cycle)
        if done is None:
            return
        snap, value, profiles = done
        report = self.trainer.report
        await self.p.send([("model", b"current", value), *segment_events(snap, report, profiles)])
        await self.p.redis_retry(
            self.p.writer.publish_model,
            snap.version,
            snap.created_ms,
            list(snap.features),
            profiles,
        )
        await self._report(snap, report)

    async def _report(self, snap: Snapshot, report: Report) -> None:
        assert self.trainer is not None
        health = await self.p.redis_retry(self.p.writer.health, [seg.id for seg in snap.segments])
        report_model(snap, report, health)
        entry = history_entry(snap, report, health, self.p.settings)
        await self.p.redis_retry(self.p.writer.append_history, entry)
        d = report.drifts
        found = [f"feature {f} (PSI {d.feature_psi[f]:.2f})" for f in d.features]
        found += [f"segment shares (PSI {d.segment_psi:.2f})"] if d.segments else []
        found += [f"centroid {c} ({d.centroid_shift[c]:.2f} z)" for c in d.centroids]
        log.info(
            "model v%d: %d segments from %d users; drift %s",
            snap.version,
            len(snap.segments),
            len(self.trainer.users),
            ("confirmed: " + ", ".join(found) if found else "none")
            if report.checked
            else "not judged (catching up)",
        )


async def learn_in_slices(trainer: Trainer, draws: int) -> None:
    """A learning step in slices of ``LEARN_SLICE`` draws, the trainer's loop serving its
    other tasks (following ``training``, the reports to the worker) between them."""
    for start in range(0, draws, LEARN_SLICE):
        trainer.learn(min(LEARN_SLICE, draws - start))
        await asyncio.sleep(0)


def segment_events(
    snap: Snapshot, report: Report, profiles: dict[int, dict[str, Any]]
) -> list[tuple[str, bytes | None, bytes | None]]:
    """Segments that appeared in or vanished from this version, for ``segment-changes``."""
    events = [
        SegmentEvent.make(sid, "appeared", snap.version, snap.created_ms, profiles[sid]["name"])
        for sid in report.appeared
    ] + [
        SegmentEvent.make(sid, "vanished", snap.version, snap.created_ms, None)
        for sid in report.vanished
    ]
    return [("segment-changes", e.key, e.to_json()) for e in events]


def history_entry(
    snap: Snapshot, report: Report, health: dict[int, Health], settings: Settings
) -> dict[str, Any]:
    """What ``segstream report`` draws its history from: one entry per cycle."""
    d = report.drifts
    return {
        "thresholds": {
            "feature_psi": settings.drift_feature_psi,
            "segment_psi": settings.drift_segment_psi,
            "centroid_shift": settings.drift_centroid_shift,
        },
        "version": snap.version,
        "created_ms": snap.created_ms,
        "wall_ms": int(time.time() * 1000),
        "segments": {sid: h.as_dict() for sid, h in health.items()},
        "checked": report.checked,
        "feature_psi": {f: round(v, 4) for f, v in d.feature_psi.items()},
        "segment_psi": round(d.segment_psi, 4),
        "centroid_shift": {sid: round(v, 4) for sid, v in d.centroid_shift.items()},
        "confirmed": {"features": d.features, "segments": d.segments, "centroids": d.centroids},
        "silhouette": report.silhouette,
        "appeared": report.appeared,
        "vanished": report.vanished,
    }


def report_model(snap: Snapshot, report: Report, health: dict[int, Health]) -> None:
    """The model-level series (only the model's owner exports them)."""
    metrics.MODEL_OWNER.set(1)
    forget_segment_series(keep={str(sid) for sid in health})
    total = sum(h.users for h in health.values())
    for sid, h in health.items():
        label = str(sid)
        _set(metrics.SEGMENT_USERS, label, h.users)
        _set(metrics.SEGMENT_SHARE, label, h.users / total if total else 0.0)
        _set(metrics.SEGMENT_REVENUE, label, h.revenue)
        _set(metrics.SEGMENT_AD_COST, label, h.ad_cost)
        _set(metrics.SEGMENT_CONVERSION, label, h.conversion_rate)
        _set(metrics.SEGMENT_CAC, label, h.cac)
        _set(metrics.SEGMENT_ROAS, label, h.roas)
    d = report.drifts
    if report.checked:
        metrics.DRIFT_CHECKED.set_to_current_time()
        for sid, shift in d.centroid_shift.items():
            _set(metrics.CENTROID_SHIFT, str(sid), shift)
        for feature, value in d.feature_psi.items():
            _set(metrics.FEATURE_DRIFT, feature, value)
        metrics.SEGMENT_DRIFT.set(d.segment_psi)
        for kind, n in d.confirmed.items():
            metrics.DRIFT_DETECTED.labels(kind).inc(n)
    if report.silhouette is not None:
        _set(metrics.CLUSTER_QUALITY, "silhouette", report.silhouette)


def _set(gauge: Gauge, label: str, value: float | None) -> None:
    """Set one labelled series; an undefined value removes it (no made-up number)."""
    if value is not None:
        gauge.labels(label).set(value)
        return
    with contextlib.suppress(KeyError):
        gauge.remove(label)


SEGMENT_GAUGES = (
    metrics.SEGMENT_USERS,
    metrics.SEGMENT_SHARE,
    metrics.SEGMENT_REVENUE,
    metrics.SEGMENT_AD_COST,
    metrics.SEGMENT_CONVERSION,
    metrics.SEGMENT_CAC,
    metrics.SEGMENT_ROAS,
    metrics.CENTROID_SHIFT,
)
_exported: set[str] = set()  # segment labels the gauges above carry now


def forget_segment_series(keep: set[str] | frozenset[str] = frozenset()) -> None:
    """Drop the per-segment series of segments not in ``keep`` (a vanished segment must
    not linger with its last value)."""
    for label in _exported - keep:
        for gauge in SEGMENT_GAUGES:
            _set(gauge, label, None)
    _exported.clear()
    _exported.update(keep)


def forget_model_series() -> None:
    """This worker no longer owns the model: its model-level series go away."""
    metrics.MODEL_OWNER.set(0)
    forget_segment_series()
    for gauge in (metrics.FEATURE_DRIFT, metrics.CLUSTER_QUALITY):
        gauge.clear()
