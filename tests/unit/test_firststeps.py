"""What the daemon tells a new operator: commands, addresses and the ``/`` text (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mirrorbits.config import ConfigError
from mirrorbits.embedded import embedded_config, refuse_with_config_file
from mirrorbits.firststeps import (
    ctl_command,
    ctl_program,
    example_file,
    http_base,
    no_mirror_hint,
    root_text,
)


@pytest.mark.parametrize(("address", "password", "expected"), [
    ("localhost:3390", False, "ctl"),
    (":3390", False, "ctl"),
    ("0.0.0.0:3390", False, "ctl"),
    ("127.0.0.1:3390", False, "ctl -h 127.0.0.1"),
    ("localhost:4000", True, "ctl -p 4000 -P <RPCPassword>"),
    ("[::1]:3391", False, "ctl -h ::1 -p 3391"),
    ("unix:/run/mirrorbits.sock", False, "ctl -h unix:/run/mirrorbits.sock"),
])
def test_ctl_command_reaches_the_daemon(address: str, password: bool, expected: str) -> None:
    assert ctl_command("ctl", address, password) == expected


def test_ctl_program_is_the_installed_one(tmp_path: Path) -> None:
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "mirrorbits-ctl").touch()
    python = str(bin_dir / "python")
    assert ctl_program(python, str(tmp_path), lambda name: None) == ".venv/bin/mirrorbits-ctl"
    assert ctl_program(python, "/elsewhere", lambda name: None) == str(bin_dir / "mirrorbits-ctl")
    found = str(bin_dir / "mirrorbits-ctl")
    assert ctl_program(python, str(tmp_path), lambda name: found) == "mirrorbits-ctl"
    other = tmp_path / "other"
    assert ctl_program(str(other / "python"), str(tmp_path), lambda name: None) == "mirrorbits-ctl"


@pytest.mark.parametrize(("address", "expected"), [
    (":8080", "http://localhost:8080"),
    ("127.0.0.1:18080", "http://127.0.0.1:18080"),
    ("[::]:80", "http://localhost:80"),
    ("[::1]:8080", "http://[::1]:8080"),
    ("unix:/run/http.sock", "unix:/run/http.sock"),
])
def test_http_base(address: str, expected: str) -> None:
    assert http_base(address) == expected


def test_example_file_is_the_first_file_breadth_first(tmp_path: Path) -> None:
    assert example_file(str(tmp_path / "missing")) is None
    assert example_file(str(tmp_path)) is None
    (tmp_path / "b" / "deep").mkdir(parents=True)
    (tmp_path / "b" / "deep" / "z.iso").touch()
    (tmp_path / ".hidden").touch()
    assert example_file(str(tmp_path)) == "/b/deep/z.iso"
    (tmp_path / "b" / "y.iso").touch()
    assert example_file(str(tmp_path)) == "/b/y.iso"
    (tmp_path / "x.txt").touch()
    assert example_file(str(tmp_path)) == "/x.txt"
    assert example_file(str(tmp_path), limit=1) is None  # "b" was the one entry looked at


def test_root_text_without_mirror_gives_the_commands() -> None:
    text = root_text(repository="/srv/repo", redis="a private redis-server on 127.0.0.1:1",
                     ctl="ctl -p 4", mirrors=0, example="/a", demo=False, indexed=False)
    lines = text.splitlines()
    assert lines[0] == "Service Unavailable"
    assert "Repository: /srv/repo (being indexed: a mirror can be scanned once this is done)" \
        in lines
    assert "Redis:      a private redis-server on 127.0.0.1:1" in lines
    assert "Mirrors:    none registered yet" in lines
    assert ("  ctl -p 4 add -http https://mirror.example.org/pub/ -rsync "
            "rsync://mirror.example.org/pub/ example") in lines
    assert "  ctl -p 4 scan -enable example" in lines
    assert "/a" not in text


def test_root_text_with_mirrors_points_at_a_file() -> None:
    text = root_text(repository="/srv/repo", redis="r", ctl="ctl", mirrors=2,
                     example="/iso/x.iso", demo=True)
    assert "Mirrors:    2 registered (ctl list shows their state)" in text
    assert "/iso/x.iso?mirrorlist shows which mirrors can serve it" in text
    assert "demo-a (127.0.0.2) and demo-b (127.0.0.3)" in text
    assert "add -http" not in text
    unknown = root_text(repository="/r", redis="r", ctl="c", mirrors=None, example=None,
                        demo=False)
    assert "Mirrors:    unknown: the database is not ready (see the daemon's log)" in unknown


def test_no_mirror_hint() -> None:
    assert no_mirror_hint("ctl", "/srv/repo", None, demo_hint=False) == (
        "No mirror is registered yet: add one that carries a copy of /srv/repo (scanned over "
        "rsync or FTP, then checked over HTTP): ctl add -http https://mirror.example.org/pub/ "
        "-rsync rsync://mirror.example.org/pub/ example, then ctl scan -enable example")
    assert no_mirror_hint("ctl", "/r", "http://localhost:8080", demo_hint=True).endswith(
        "; or restart with --demo to see two local mirrors at work. "
        "http://localhost:8080/ says more")


def test_embedded_config_takes_the_options(tmp_path: Path) -> None:
    config = embedded_config(str(tmp_path), "127.0.0.1:9000", "unix:/tmp/c.sock", None)
    assert (config.repository, config.listen_address, config.rpc_listen_address,
            config.redis_address) == (str(tmp_path), "127.0.0.1:9000", "unix:/tmp/c.sock",
                                      "127.0.0.1:6379")
    with pytest.raises(ConfigError, match=r"^--control 'x' is invalid: "):
        embedded_config(str(tmp_path), None, "x", None)


def test_embedded_options_are_refused_with_a_file() -> None:
    refuse_with_config_file({"listen": None, "demo": 0}, "/etc/m.conf")
    with pytest.raises(ConfigError, match=r"^--demo applies to the embedded configuration only "
                                          r"\(no configuration file\), and /etc/m\.conf is used$"):
        refuse_with_config_file({"demo": 1}, "/etc/m.conf")
    with pytest.raises(ConfigError, match=r"set RedisAddress in /etc/m\.conf instead$"):
        refuse_with_config_file({"redis-address": "h:1"}, "/etc/m.conf")
