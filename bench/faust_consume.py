"""Baseline: a Faust app with the worker's own settings whose agents only consume.

One agent per source topic takes batches (``take_events``, the worker's batch size and
wait) and counts them; nothing is parsed, written or sent. Once ``--events`` have been
taken it writes ``{"events", "first_s", "last_s"}`` (``time.time``) to ``--out`` and
exits. The difference to ``segstream worker`` on the same topics is the pipeline's
cost; the difference to ``bench/throughput.py``'s plain loop is Faust's.

    SEGSTREAM_NAMESPACE=ns python bench/faust_consume.py --events N --out FILE
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import faust
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from segstream.schemas.settings import SOURCES, Settings
from segstream.streams.app import Runtime
from segstream.streams.engine import use_event_loop


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, required=True)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    s = Settings()
    rt = Runtime(s, f"{s.consumer_group}-consume-only")
    seen = {"n": 0, "first": 0.0, "cpu": 0.0}

    def agent_for(source: str) -> None:
        async def consume(stream: Any) -> None:
            async for events in stream.take_events(s.batch_size, within=s.batch_within_s):
                if not seen["n"]:
                    seen["first"], seen["cpu"] = time.time(), time.process_time()
                seen["n"] += len(events)
                if seen["n"] >= args.events:
                    result = {
                        "events": seen["n"],
                        "first_s": seen["first"],
                        "last_s": time.time(),
                        "cpu_s": time.process_time() - seen["cpu"],  # all its threads
                    }
                    args.out.write_bytes(orjson.dumps(result))
                    os._exit(0)

        consume.__name__ = consume.__qualname__ = f"consume_{source}"
        rt.engine.app.agent(rt.engine.topics[source], name=f"consume-{source}", concurrency=1)(
            consume
        )

    for source in SOURCES:
        agent_for(source)
    use_event_loop(s)  # the worker's loop: the baseline pays what the worker pays
    faust.Worker(
        rt.engine.app, loglevel="warning", redirect_stdouts=False
    ).execute_from_commandline()


if __name__ == "__main__":
    main()
