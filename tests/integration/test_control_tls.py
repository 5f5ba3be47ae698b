"""TLS on the control channel with client certificates, against a real daemon (twistd).

The test makes two CAs: the daemon's certificate and the good client's come from the first;
a client with no certificate, or one from the other CA, is refused during the handshake.
``mirrorbits-ctl`` checks the daemon's certificate against its CA and the address it dials.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
import redis

from tests.certificates import Authority
from tests.daemon import BIN, DaemonProcess, base_config, repo_file, run_twistd
from tests.servers import RedisServer, env_without_proxies

pytestmark = pytest.mark.integration


@attrs.frozen
class Setup:
    daemon: DaemonProcess
    ours: Authority
    theirs: Authority
    client: tuple[Path, Path]
    stranger: tuple[Path, Path]


@pytest.fixture
def setup(tmp_path: Path, redis_server: RedisServer,
          redis_db: redis.Redis) -> Iterator[Setup]:
    ours = Authority("ours", tmp_path / "pki")
    theirs = Authority("theirs", tmp_path / "pki")
    server_cert, server_key = ours.issue("daemon", server=True, hosts=("127.0.0.1", "localhost"))
    repo = tmp_path / "repo"
    repo_file(repo, "/a.txt", b"hello\n", 1687249800)
    values = base_config(repo, redis_server.address, RPCTLSCertificate=str(server_cert),
                         RPCTLSKey=str(server_key), RPCTLSClientCA=str(ours.ca_path))
    daemon = DaemonProcess(workdir=tmp_path / "run", values=values, args=["--no-monitor"])
    daemon.start()
    yield Setup(daemon, ours, theirs, ours.issue("admin", server=False),
                theirs.issue("intruder", server=False))
    daemon.stop()


def tls(ca: Path, cert: Path | None = None, key: Path | None = None) -> list[str]:
    flags = ["-tls-ca", str(ca)]
    if cert is not None:
        flags += ["-tls-cert", str(cert)]
    if key is not None:
        flags += ["-tls-key", str(key)]
    return flags


def test_a_client_with_a_certificate_of_the_ca_is_served(setup: Setup) -> None:
    cert, key = setup.client
    done = setup.daemon.ctl("list", *tls(setup.ours.ca_path, cert, key))
    assert (done.returncode, done.stderr) == (0, "")
    assert "Identifier" in done.stdout
    # The same from the environment, by host name.
    _, port = setup.daemon.rpc
    env = {**env_without_proxies(), "MIRRORBITS_CTL_TLS_CA": str(setup.ours.ca_path),
           "MIRRORBITS_CTL_TLS_CERT": str(cert), "MIRRORBITS_CTL_TLS_KEY": str(key)}
    by_name = subprocess.run([str(BIN / "mirrorbits-ctl"), "-h", "localhost", "-p", str(port),
                              "-P", setup.daemon.values["RPCPassword"], "version"],
                             capture_output=True, text=True, timeout=60, env=env)
    assert by_name.returncode == 0, by_name.stderr


def test_clients_without_the_right_certificate_are_refused(setup: Setup) -> None:
    ca = setup.ours.ca_path
    target = "{}:{}".format(*setup.daemon.rpc)
    refusals = {
        "no certificate": (setup.daemon.ctl("list", *tls(ca)),
                           f"rpc: TLS with {target} failed: the daemon requires a client "
                           "certificate (-tls-cert, -tls-key)\n"),
        "another CA's certificate": (
            setup.daemon.ctl("list", *tls(ca, *setup.stranger)),
            f"rpc: TLS with {target} failed: the daemon does not accept this client "
            "certificate (its CA is not the daemon's RPCTLSClientCA)\n"),
        "no TLS at all": (setup.daemon.ctl("list"),
                          f"rpc: connection to {target} lost: Connection was closed cleanly. "
                          "(if the daemon uses TLS: give -tls-ca, -tls-cert and -tls-key)\n"),
    }
    for why, (refused, message) in refusals.items():
        assert (refused.returncode, refused.stdout, refused.stderr) == (1, "", message), why
    setup.daemon.wait_log("Control: TLS with 127.0.0.1 failed: peer did not return a certificate")
    setup.daemon.wait_log("Control: TLS with 127.0.0.1 failed: certificate verify failed")
    assert "Traceback" not in setup.daemon.log()


def test_the_client_checks_the_daemon_certificate(setup: Setup) -> None:
    cert, key = setup.stranger
    other = setup.daemon.ctl("list", *tls(setup.theirs.ca_path, cert, key))
    target = "{}:{}".format(*setup.daemon.rpc)
    assert (other.returncode, other.stderr) == (
        1, f"rpc: TLS with {target} failed: the daemon's certificate does not come from the "
        "-tls-ca CA\n")


def test_unusable_files_stop_the_start_with_one_line(tmp_path: Path) -> None:
    ours = Authority("ours", tmp_path / "pki")
    cert, _ = ours.issue("daemon", server=True, hosts=("127.0.0.1",))
    _, other_key = ours.issue("other", server=True, hosts=("127.0.0.1",))
    cases = {
        "RPCTLSCertificate: /nonexistent.pem\nRPCTLSClientCA: /nonexistent-ca.pem\n":
            "mirrorbits: RPCTLSCertificate /nonexistent.pem: cannot read it: "
            "No such file or directory",
        f"RPCTLSCertificate: {cert}\nRPCTLSKey: {other_key}\nRPCTLSClientCA: {ours.ca_path}\n":
            f"mirrorbits: RPCTLSKey {other_key}: the key does not match the certificate of "
            f"RPCTLSCertificate {cert}",
        f"RPCTLSCertificate: {cert}\nRPCTLSClientCA: {ours.ca_path}\n":
            f"mirrorbits: RPCTLSCertificate {cert}: no usable PEM private key in it (it must "
            "not be protected by a passphrase)",
        f"RPCTLSCertificate: {cert}\nRPCTLSKey: {other_key}\nRPCTLSClientCA: {other_key}\n":
            f"mirrorbits: RPCTLSClientCA {other_key}: no PEM certificate in it",
    }
    repo = tmp_path / "repo"
    repo.mkdir()
    for number, (settings, message) in enumerate(cases.items()):
        config = tmp_path / f"{number}.conf"
        config.write_text(f"Repository: {repo}\nRPCListenAddress: 127.0.0.1:0\n"
                          f"ListenAddress: 127.0.0.1:0\nRedisAddress: 127.0.0.1:1\n{settings}")
        done = run_twistd("-n", "--pidfile=", "mirrorbits", "--config", str(config),
                          cwd=tmp_path)
        assert done.returncode != 0
        assert done.stderr.strip().splitlines()[-1] == message, done.stderr
        assert "Traceback" not in done.stderr + done.stdout


def test_the_daemon_certificate_must_name_the_host_dialled(setup: Setup) -> None:
    """``127.1`` reaches the daemon (127.0.0.1) but is a name its certificate does not hold."""
    cert, key = setup.client
    _, port = setup.daemon.rpc
    dialled = subprocess.run(
        [str(BIN / "mirrorbits-ctl"), "-h", "127.1", "-p", str(port), "-P",
         setup.daemon.values["RPCPassword"], *tls(setup.ours.ca_path, cert, key), "list"],
        capture_output=True, text=True, timeout=60, env=env_without_proxies())
    assert dialled.returncode == 1
    assert dialled.stderr.startswith(
        f"rpc: TLS with 127.1:{port} failed: the daemon's certificate is not for this host "
        "name or address ("), dialled.stderr
    assert dialled.stderr.count("\n") == 1


def test_renewed_files_apply_at_reload_and_bad_ones_keep_the_running_ones(setup: Setup) -> None:
    """Certificate renewal without restart: the files are read again at each reload (SIGHUP
    or ``mirrorbits-ctl reload``); files that cannot be used leave the running ones."""
    daemon = setup.daemon
    cert, key = setup.client
    server_cert = Path(daemon.values["RPCTLSCertificate"])
    server_key = Path(daemon.values["RPCTLSKey"])
    # Renewed in place, by another CA so that the client can tell which one it is served.
    renewed_cert, renewed_key = setup.theirs.issue("daemon", server=True, hosts=("127.0.0.1",))
    server_cert.write_bytes(renewed_cert.read_bytes())
    server_key.write_bytes(renewed_key.read_bytes())
    assert daemon.ctl("version", *tls(setup.ours.ca_path, cert, key)).returncode == 0  # not yet
    daemon.signal(signal.SIGHUP)
    daemon.wait_log("SIGHUP Received: Reloading configuration")
    renewed = daemon.ctl("version", *tls(setup.theirs.ca_path, cert, key))
    assert (renewed.returncode, renewed.stderr) == (0, "")
    assert "Control TLS: certificate, key and client CA read again" in daemon.log()
    assert daemon.ctl("version", *tls(setup.ours.ca_path, cert, key)).returncode == 1

    server_key.write_text("not a key\n")  # a renewal gone wrong
    reloaded = daemon.ctl("reload", *tls(setup.theirs.ca_path, cert, key))
    assert reloaded.returncode == 0, reloaded.stderr
    daemon.wait_log(f"Control TLS not reloaded, the current certificate stays: RPCTLSKey "
                    f"{server_key}: no usable PEM private key in it")
    still = daemon.ctl("version", *tls(setup.theirs.ca_path, cert, key))
    assert (still.returncode, still.stderr) == (0, "")
    assert daemon.log().count("Control TLS not reloaded") == 1
    assert "Traceback" not in daemon.log()
