"""One engine boundary (#14): only ``streams/engine/`` imports Faust or aiokafka, or
reaches into their objects; the stages get plain records and tables."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("streams", "consumers", "models", "schemas")
ENGINE = ROOT / "streams" / "engine"
ENGINES = ("faust", "aiokafka", "mode")  # mode: Faust's service library
# nothing outside the engine imports it (the key partitioner is murmurhash2's since 5362a4d)
ALLOWED: set[tuple[str, str]] = set()
# attributes only Faust's and aiokafka's objects have (a table's store, the consumer's
# thread, the coordinator, the offset bookkeeping the commit guard wraps)
PRIVATE = {"_thread", "_coordinator", "_new_offset", "take_events", "changelog_topic"}


def outside_engine() -> list[Path]:
    return [
        path
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if ENGINE not in path.parents
    ]


def engine_imports(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return [m for m in found if m.split(".")[0] in ENGINES]


def test_only_the_engine_imports_faust_or_aiokafka() -> None:
    offenders = []
    for path in outside_engine():
        rel = path.relative_to(ROOT).as_posix()
        for module in engine_imports(ast.parse(path.read_text())):
            if (rel, module) not in ALLOWED:
                offenders.append(f"{rel}: {module}")
    assert offenders == [], "move these behind streams/engine/: " + ", ".join(offenders)


def test_nothing_outside_the_engine_reaches_into_faust_objects() -> None:
    offenders = []
    for path in outside_engine():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE:
                rel = path.relative_to(ROOT).as_posix()
                offenders.append(f"{rel}:{node.lineno} .{node.attr}")
    assert offenders == [], "use the engine's interface instead: " + ", ".join(offenders)


def test_the_check_sees_an_import_and_a_private_attribute() -> None:
    # the scan itself can fail: it finds what it is looking for in code that has it
    tree = ast.parse("import faust\nfrom aiokafka import x\nfrom . import y\nc._thread.z")
    assert engine_imports(tree) == ["faust", "aiokafka"]
    assert [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)] == ["z", "_thread"]


def test_a_table_reads_the_memory_stores_own_dict() -> None:
    from segstream.streams.engine.app import store_of

    class Store(dict):  # stands in for a store without a dict of its own
        pass

    class MemoryStore:  # as Faust's memory store: its values in ``data``
        def __init__(self) -> None:
            self.data: dict[bytes, bytes] = {b"k": b"v"}

    class FaustTable:
        def __init__(self, store: object) -> None:
            self.data = store

    memory = MemoryStore()
    assert store_of(FaustTable(memory)) is memory.data
    other = Store(k=b"v")
    assert store_of(FaustTable(other)) is other
