"""The message ``mirrorbits-ctl scan`` prints for a failed scan (control.server.scan_failure)."""

from __future__ import annotations

from mirrorbits.control.server import scan_failure
from mirrorbits.scan.rsync import ScanError


def test_rsyncs_own_complaint_follows_its_exit_status() -> None:
    error = ScanError("rsync: Error in socket I/O", (
        "rsync: [Receiver] failed to connect to 127.0.0.79 (127.0.0.79): Connection refused (111)",
        "rsync error: error in socket IO (code 10) at clientserver.c(165) [Receiver=3.5.0]",
    ))
    assert scan_failure(error) == ("rsync: Error in socket I/O: failed to connect to 127.0.0.79 "
                                   "(127.0.0.79): Connection refused (111)")


def test_a_mirrors_words_reach_the_terminal_without_control_characters() -> None:
    error = ScanError("rsync: Error starting client-server protocol",
                      ("@ERROR: \x1b[31mgo away\x07" + "x" * 400,))
    assert scan_failure(error) == ("rsync: Error starting client-server protocol: @ERROR: "
                                   "?[31mgo away?" + "x" * 279)


def test_without_stderr_the_message_alone() -> None:
    assert scan_failure(ScanError("rsync: exit status 99")) == "rsync: exit status 99"
    assert scan_failure(ScanError("rsync: Error in socket I/O", ("rsync error: x",))) == (
        "rsync: Error in socket I/O")
