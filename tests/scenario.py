"""The public conformance scenario (tests/fixtures/conformance), laid out for our tests.

``build_repository`` writes the local repository with exact mtimes; ``load_redis``
writes a recorded Redis snapshot of the reference into a database, so the daemon
under test sees exactly what the reference saw.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import redis

CONFORMANCE = Path(__file__).parent / "fixtures" / "conformance"


def scenario() -> dict[str, Any]:
    result: dict[str, Any] = json.loads((CONFORMANCE / "scenario.json").read_text())
    return result


def content(spec: dict[str, Any]) -> bytes:
    """Bytes of a scenario content recipe: UTF-8 text, or a sha256 chain cut to size."""
    if "text" in spec:
        return str(spec["text"]).encode("utf-8")
    seed, size = spec["blob"]["seed"], spec["blob"]["size"]
    chunks = bytearray()
    counter = 0
    while len(chunks) < size:
        chunks += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(chunks[:size])


def build_repository(root: Path) -> Path:
    """Write ``root/repo`` (and the file outside it); returns the repository path."""
    data = scenario()
    repo = root / "repo"
    for entry in data["repository"]["files"]:
        path = repo / entry["path"].lstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(entry["content"]))
        os.utime(path, ns=(entry["mtime_ns"], entry["mtime_ns"]))
    for directory in data["repository"].get("empty_directories", []):
        (repo / directory.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for link in data["repository"]["symlinks"]:
        target = repo / link["path"].lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(link["target"])
    for outside in data["repository"].get("outside_files", []):
        path = root / outside["path_from_root"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content(outside["content"]))
    return repo


def load_redis(client: redis.Redis, snapshot: str = "after-health.json") -> None:
    """Replace the database's content by a recorded snapshot of the reference."""
    keys = json.loads((CONFORMANCE / snapshot).read_text())["keys"]
    client.flushdb()
    pipe = client.pipeline(transaction=False)
    for key, entry in keys.items():
        kind, value = entry["type"], entry["value"]
        if kind == "string":
            pipe.set(key, value)
        elif kind == "hash":
            pipe.hset(key, mapping=value)
        elif kind == "set":
            pipe.sadd(key, *value)
        elif kind == "list":
            pipe.rpush(key, *value)
        elif kind == "zset":
            pipe.zadd(key, dict(value))
        else:
            raise ValueError(f"unknown key type {kind} for {key}")
    pipe.execute()


def conformance_config(repo: Path, logdir: Path, redis_address: str, http: str, rpc: str,
                       allow_http_to_https: bool = False) -> str:
    """The recorded configuration, with our paths and ports."""
    template: str = scenario()["config"]["template"]
    text = template.format(
        repo=repo, templates="", logdir=logdir,
        geo=str(Path(__file__).parent / "fixtures" / "geo"),
        redis_port=redis_address.rpartition(":")[2],
        allow_http_to_https="true" if allow_http_to_https else "false",
    )
    text = text.replace("Templates: \n", "")
    text = text.replace("ListenAddress: 127.0.0.1:8930", f"ListenAddress: {http}")
    text = text.replace("RPCListenAddress: 127.0.0.1:8932", f"RPCListenAddress: {rpc}")
    return text
