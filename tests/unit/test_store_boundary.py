"""The house rule: Redis is spoken only inside ``mirrorbits/store/``.

Outside it, no Redis command is sent (no method of the txredisapi client is called, no
command is spelled) and no hash field of the reference's schema is spelled; inside it, each
field name is spelled once, in ``store/records.py``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import mirrorbits
from mirrorbits.store.records import FileField, MirrorField

PACKAGE = Path(mirrorbits.__file__).parent
STORE = PACKAGE / "store"

# txredisapi methods that name a Redis command and nothing else in this program (``get``,
# ``set``, ``delete``, ``exists``... are left out: dicts, sets and headers have them too).
CLIENT_COMMANDS = frozenset({
    "execute_command", "hget", "hgetall", "hmget", "hmset", "hset", "hdel", "hkeys",
    "hincrby", "smembers", "sscan", "sadd", "srem", "sdiff", "sismember", "srandmember",
    "rpush", "lrange", "ltrim", "multi", "pipeline", "execute_pipeline", "rename", "expire",
    "publish", "incr", "unwatch",
})
COMMAND_NAMES = frozenset({
    "HSET", "HMSET", "HGET", "HMGET", "HGETALL", "HDEL", "SADD", "SREM", "SMEMBERS",
    "SSCAN", "SRANDMEMBER", "PUBLISH", "RENAME", "RPUSH", "EVAL", "EXPIRE", "UNLINK",
})
FIELDS = frozenset(
    value for space in (MirrorField, FileField)
    for name, value in vars(space).items() if name.isupper()
)
# Field names that are also ordinary words of the program (JSON keys, AMP arguments, URL
# schemes, query arguments): outside the store they mean something else.
COMMON_WORDS = frozenset({
    "ID", "name", "http", "rsync", "ftp", "score", "latitude", "longitude", "asnum",
    "comment", "enabled", "size", "sha1", "sha256", "md5",
})


def _modules(outside_store: bool) -> Iterator[Path]:
    for path in sorted(PACKAGE.rglob("*.py")):
        if (STORE in path.parents) != outside_store:
            yield path


def _strings(tree: ast.AST) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value


def _where(path: Path, line: int) -> str:
    return f"{path.relative_to(PACKAGE.parent)}:{line}"


def test_no_redis_command_outside_the_store() -> None:
    found = []
    for path in _modules(outside_store=True):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in CLIENT_COMMANDS):
                found.append(f"{_where(path, node.lineno)}: .{node.func.attr}()")
        found += [f"{_where(path, line)}: {text!r}" for line, text in _strings(tree)
                  if text in COMMAND_NAMES]
    assert found == []


def test_no_hash_field_spelled_outside_the_store() -> None:
    distinctive = FIELDS - COMMON_WORDS
    found = [f"{_where(path, line)}: {text!r}"
             for path in _modules(outside_store=True)
             for line, text in _strings(ast.parse(path.read_text(encoding="utf-8")))
             if text in distinctive]
    assert found == []


@pytest.mark.parametrize("module", sorted(p.name for p in STORE.glob("*.py")))
def test_each_field_is_spelled_only_in_records(module: str) -> None:
    if module == "records.py":
        return
    tree = ast.parse((STORE / module).read_text(encoding="utf-8"))
    assert [(line, text) for line, text in _strings(tree) if text in FIELDS] == []


def test_records_spells_each_field_once() -> None:
    constants = [value for space in (MirrorField, FileField)
                 for name, value in vars(space).items() if name.isupper()]
    assert len(constants) == len(set(constants))
    tree = ast.parse((STORE / "records.py").read_text(encoding="utf-8"))
    spaces = [node for node in ast.walk(tree)
              if isinstance(node, ast.ClassDef) and node.name in ("MirrorField", "FileField")]
    inside = {line for space in spaces
              for line in range(space.lineno, (space.end_lineno or space.lineno) + 1)}
    # Elsewhere in records.py, the same words are Mirror's attribute names, not fields.
    elsewhere = [(line, text) for line, text in _strings(tree)
                 if text in FIELDS - COMMON_WORDS and line not in inside]
    assert elsewhere == []
