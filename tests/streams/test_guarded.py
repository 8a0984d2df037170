"""A batch runs to its end even when the agent is cancelled (a stop or rebalance)."""

from __future__ import annotations

import asyncio

import pytest

from segstream.streams.engine import guarded


def test_a_cancelled_agent_finishes_its_batch_then_stops() -> None:
    done: list[int] = []

    async def batch() -> None:
        for i in range(5):
            await asyncio.sleep(0.01)
            done.append(i)

    async def main() -> None:
        agent = asyncio.ensure_future(guarded("edge", batch()))
        await asyncio.sleep(0.015)  # mid-batch
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
        assert done == [0, 1, 2, 3, 4]  # nothing was cut short before Faust acks it

    asyncio.run(main())


def test_cancelled_twice_still_finishes() -> None:
    done: list[int] = []

    async def batch() -> None:
        await asyncio.sleep(0.05)
        done.append(1)

    async def main() -> None:
        agent = asyncio.ensure_future(guarded("edge", batch()))
        await asyncio.sleep(0.01)
        agent.cancel()
        await asyncio.sleep(0.01)
        agent.cancel()
        with pytest.raises(asyncio.CancelledError):
            await agent
        assert done == [1]

    asyncio.run(main())


def test_a_batch_that_ends_normally_returns() -> None:
    async def batch() -> None:
        await asyncio.sleep(0)

    asyncio.run(guarded("edge", batch()))


def test_a_failed_batch_exits_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    codes: list[int] = []

    def fake_exit(code: int) -> None:
        codes.append(code)
        raise SystemExit(code)

    monkeypatch.setattr("segstream.streams.engine.agents.os._exit", fake_exit)
    monkeypatch.setattr("segstream.streams.engine.agents.logging.shutdown", lambda: None)

    async def batch() -> None:
        raise ValueError("a bug")

    with pytest.raises(SystemExit):
        asyncio.run(guarded("edge", batch()))
    assert codes == [70]
