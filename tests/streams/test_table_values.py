"""engine.tables.Table.put keeps right-sized values: what a table holds is held for good."""

from __future__ import annotations

import tracemalloc

import orjson

from segstream.streams.engine.tables import Table

PROFILE = {f"field_{i}": i * 1.5 for i in range(40)}  # about 800 bytes of JSON


def test_values_from_orjson_are_kept_right_sized() -> None:
    table = Table.in_memory("profiles", partitions=4)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        changes = table.put({b"u:%d" % i: orjson.dumps(PROFILE) for i in range(500)})
        del changes
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    size = len(orjson.dumps(PROFILE))
    assert held < 500 * 2 * size, held  # the values, keys and dict (not 4-16 KB a value)
    assert table.get(b"u:7") == orjson.dumps(PROFILE)


def test_a_change_carries_the_value_the_table_holds() -> None:
    table = Table.in_memory("profiles", partitions=4)
    ((topic, key, value, part),) = table.put({b"u:1": orjson.dumps(PROFILE)})
    assert (topic, key) == ("profiles-changelog", b"u:1")
    assert value is table.get(b"u:1") and 0 <= part < 4
    ((_, _, gone, _),) = table.put({b"u:1": None})
    assert gone is None and table.get(b"u:1") is None
