"""streams/training.learn_in_slices: a learning step in slices teaches the learner the
same draws as one step, and the event loop serves other tasks between the slices."""

from __future__ import annotations

import asyncio

from segstream.models.features import feature_space
from segstream.models.trainer import Trainer
from segstream.streams.training import LEARN_SLICE, learn_in_slices

SPACE = feature_space(["recency_days", "frequency_30d", "purchases"])


class Recording:
    def __init__(self) -> None:
        self.learned: list[dict[str, float]] = []
        self.published = None

    def learn_one(self, x: dict[str, float]) -> None:
        self.learned.append(dict(x))


def trainer() -> tuple[Trainer, Recording]:
    learner = Recording()
    t = Trainer(SPACE, learner, seed=5, learn_per_cycle=10)  # type: ignore[arg-type]
    for i in range(30):
        t.observe(f"u:{i}", {"recency_days": i, "frequency_30d": i % 7, "purchases": i % 3}, 0)
    return t, learner


def test_slices_learn_what_one_step_learns() -> None:
    draws = LEARN_SLICE * 4 + 7  # a last slice shorter than the others
    whole, taught_whole = trainer()
    whole.learn(draws)
    sliced, taught_sliced = trainer()
    asyncio.run(learn_in_slices(sliced, draws))
    assert len(taught_sliced.learned) == draws
    assert taught_sliced.learned == taught_whole.learned
    assert sliced.unlearned == 0


def test_other_tasks_run_between_slices() -> None:
    t, learner = trainer()
    seen: list[int] = []  # draws learned each time the other task ran

    async def other() -> None:
        while len(learner.learned) < LEARN_SLICE * 5:
            seen.append(len(learner.learned))
            await asyncio.sleep(0)

    async def both() -> None:
        await asyncio.gather(learn_in_slices(t, LEARN_SLICE * 5), other())

    asyncio.run(both())
    inside = {n for n in seen if 0 < n < LEARN_SLICE * 5}
    assert inside, "the other task never ran while learning was under way"
    assert all(n % LEARN_SLICE == 0 for n in seen)  # only between slices, never inside one
