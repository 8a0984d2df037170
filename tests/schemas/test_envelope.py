"""schemas.envelope: items packed per destination partition come back whole, in order,
on their own partition; sizes stay capped; what does not fit is told apart."""

from __future__ import annotations

import doctest

import orjson
from aiokafka.partitioner import murmur2
from hypothesis import given
from hypothesis import strategies as st

from segstream.schemas import envelope
from segstream.schemas.envelope import MAX_ITEMS, Packer, partition_for, unpack

keys = st.text(min_size=1, max_size=30)
records = st.dictionaries(
    st.sampled_from(["k", "e", "to"]), st.integers(-(2**63), 2**63 - 1) | st.text(), max_size=3
)
sources = st.none() | st.tuples(
    st.sampled_from(["web", "ad", "crm"]), st.integers(0, 11), st.integers(0, 10**9)
)


def test_doctests() -> None:
    assert doctest.testmod(envelope).failed == 0


@given(st.binary(max_size=120), st.integers(1, 64))
def test_partition_is_the_java_clients_murmur2(key: bytes, partitions: int) -> None:
    # aiokafka's pure-Python murmur2 follows the Java client's Utils.murmur2
    assert partition_for(key, partitions) == (murmur2(key) & 0x7FFFFFFF) % partitions


def test_partition_matches_the_java_clients_own_test_vectors() -> None:
    # Kafka's UtilsTest.testMurmur2: signed 32-bit hashes of these keys
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for key, signed in cases.items():
        assert partition_for(key, 1000003) == (signed & 0x7FFFFFFF) % 1000003


@given(
    st.lists(
        st.tuples(st.sampled_from(["identity", "events"]), keys, records, sources), max_size=60
    ),
    st.integers(1, 8),
    st.integers(40, 400),
)
def test_every_item_comes_back_once_in_order_on_its_partition(
    items: list[tuple[str, str, dict[str, object], tuple[str, int, int] | None]],
    partitions: int,
    max_bytes: int,
) -> None:
    packer = Packer(partitions, max_bytes)
    for topic, key, record, src in items:
        packer.add(topic, key, record, src)
    got: dict[str, list[tuple[str, dict[str, object], tuple[str, int, int] | None]]] = {}
    offsets: dict[tuple[str, int], int] = {}
    for topic, partition, value in packer.envelopes():
        many = value.count(b"],[") + 1
        assert len(value) <= max_bytes + 40 or many == 1  # only a lone item exceeds the cap
        offset = offsets[(topic, partition)] = offsets.get((topic, partition), -1) + 1
        unpacked, misfits = unpack(value, None, partition, offset, partitions)
        assert misfits == []
        positions = [i.position for i in unpacked]
        assert positions == sorted(positions)
        assert all(i.position // MAX_ITEMS == offset for i in unpacked)
        for i in unpacked:
            assert partition_for(i.key.encode(), partitions) == partition
            got.setdefault(topic, []).append((i.key, i.record, i.src))
    for topic in ("identity", "events"):
        sent = [(k, r, s) for t, k, r, s in items if t == topic]
        # per partition the order is kept; across partitions it is not defined
        for p in range(partitions):
            mine = [x for x in sent if partition_for(x[0].encode(), partitions) == p]
            theirs = [
                x for x in got.get(topic, []) if partition_for(x[0].encode(), partitions) == p
            ]
            assert theirs == mine


def test_a_record_that_is_not_an_envelope_is_one_item_keyed_by_the_record() -> None:
    key = b"u:7"
    p = partition_for(key, 6)
    items, misfits = unpack(b'{"k":"event","e":{}}', key, p, 41, partitions=6)
    assert misfits == []
    (item,) = items
    assert (item.key, item.record, item.src, item.position) == (
        "u:7",
        {"k": "event", "e": {}},
        None,
        41 * MAX_ITEMS,
    )


def test_items_on_the_wrong_partition_and_malformed_ones_are_misfits() -> None:
    packer = Packer(4, 10_000)
    packer.add("events", "u:1", {"k": "event"}, ("web", 1, 2))
    ((_, p, value),) = packer.envelopes()
    items, misfits = unpack(value, None, (p + 1) % 4, 0, partitions=4)
    assert items == []
    assert [(m.reason, m.key, m.src) for m in misfits] == [
        ("wrong_partition", "u:1", ("web", 1, 2))
    ]
    assert orjson.loads(misfits[0].raw) == ["u:1", {"k": "event"}, ["web", 1, 2]]
    for bad in (b"\xff", b"[1,2]", b'{"env":9,"items":[]}', b'{"env":1,"p":0,"items":[[1]]}'):
        items, misfits = unpack(bad, None, 0, 0, partitions=4)
        assert items == [] and [m.reason for m in misfits] == ["malformed_envelope"], bad
    assert unpack(b'{"k":"event"}', None, 0, 0, 4)[1][0].detail == "no key"
