"""Request paths: the router's cleaning, repository evaluation, client address policy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

import mirrorbits.web.paths as paths_module
from mirrorbits.web.clientip import ClientAddressPolicy, strip_peer
from mirrorbits.web.paths import (
    EvaluationMemo,
    Forbidden,
    NotFound,
    clean_path,
    decode_path,
    evaluate,
    parse_query,
)
from mirrorbits.web.render import redirect_url


@pytest.mark.parametrize(("raw", "clean"), [
    ("/dir/../a.txt", "/a.txt"), ("//a.txt", "/a.txt"), ("/pool/.", "/pool"),
    ("/pool/./empty.lst", "/pool/empty.lst"), ("/pool/", "/pool/"), ("", "/"),
    ("/a/b/../../..", "/"), ("/x//y/", "/x/y/"), ("/a.txt", "/a.txt"),
])
def test_clean_path(raw: str, clean: str) -> None:
    assert clean_path(raw) == clean


@given(st.text(alphabet="/.a%\u00e9", max_size=12))
def test_clean_path_shortcut_agrees_with_normalisation(path: str) -> None:
    assert clean_path(path) == paths_module._normalise(path)
    assert clean_path(clean_path(path)) == clean_path(path)


def test_decode_path_keeps_plus_and_decodes_utf8() -> None:
    assert decode_path(b"/media/install+image.img") == "/media/install+image.img"
    assert decode_path(b"/gu%C3%ADa%20x") == "/guía x"
    assert decode_path(b"/%2e%2e/x") == "/../x"
    assert decode_path(b"/caf\xc3\xa9/\xff.iso") == "/caf\u00e9/\udcff.iso"  # no escapes


@pytest.mark.parametrize(("uri", "args"), [
    (b"/a.txt", {}),
    (b"/a.txt?md5", {b"md5": [b""]}),
    (b"/a.txt?sha256&stats", {b"sha256": [b""], b"stats": [b""]}),
    (b"/a?https=0&https=1", {b"https": [b"0", b"1"]}),
    (b"/a?stats=&pretty", {b"stats": [b""], b"pretty": [b""]}),
    (b"/a?x=a+b%20c&&y=%E2%82%AC", {b"x": [b"a b c"], b"y": ["\u20ac".encode()]}),
    (b"/a?bad=%zz&md5;x=1&ok", {b"ok": [b""]}),
    (b"/a?k=v=w", {b"k": [b"v=w"]}),
])
def test_parse_query_reads_bare_keys_like_the_reference(
        uri: bytes, args: dict[bytes, list[bytes]]) -> None:
    assert parse_query(uri) == args


@pytest.fixture(params=[True, False], ids=["o_path", "realpath"])
def repo(request: pytest.FixtureRequest, tmp_path: Path,
         monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with symlinks, evaluated by both resolution strategies."""
    import mirrorbits.web.paths as paths

    monkeypatch.setattr(paths, "_FAST_RESOLVE", request.param and paths._FAST_RESOLVE)
    root = tmp_path / "repo"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "b.bin").write_bytes(b"b")
    (root / "a.txt").write_bytes(b"a")
    (tmp_path / "secret.txt").write_bytes(b"s")
    os.symlink("a.txt", root / "link.txt")
    os.symlink("dir", root / "latest")
    os.symlink("../secret.txt", root / "leak.txt")
    os.symlink("missing", root / "broken")
    return root


def test_evaluate_files_directories_and_symlinks(repo: Path) -> None:
    assert evaluate(str(repo), "/a.txt").path == "/a.txt"
    assert evaluate(str(repo), "/a.txt").is_file
    assert evaluate(str(repo), "/link.txt").path == "/a.txt"
    assert evaluate(str(repo), "/latest/b.bin").path == "/dir/b.bin"
    assert evaluate(str(repo), "/dir/").path == "/dir"
    assert not evaluate(str(repo), "/dir").is_file
    assert evaluate(str(repo), "/").path == ""


def test_evaluate_refuses_what_leaves_the_repository(repo: Path) -> None:
    with pytest.raises(Forbidden):
        evaluate(str(repo), "/../secret.txt")
    with pytest.raises(Forbidden):
        evaluate(str(repo), "/leak.txt")
    with pytest.raises(NotFound):
        evaluate(str(repo), "/broken")
    with pytest.raises(NotFound):
        evaluate(str(repo), "/nothing")
    with pytest.raises(NotFound):
        evaluate(str(repo), "/a\x00b")


def test_location_is_percent_encoded_per_rfc_3986() -> None:
    # Deliberate difference (docs/differences.md): the reference escaped only bytes >= 0x80,
    # in lower case, and sent spaces, "#", "%" and "?" raw.
    from mirrorbits.model import Mirror
    from mirrorbits.selection import Candidate

    mirror = Candidate(Mirror(), absolute_url="http://m/my%20mirror/")
    assert redirect_url(mirror, "/gu\u00eda x.pdf") == b"http://m/my%20mirror/gu%C3%ADa%20x.pdf"
    assert redirect_url(mirror, "/notes #1 100%.txt?") == (
        b"http://m/my%20mirror/notes%20%231%20100%25.txt%3F")


def test_forwarded_for_believed_from_everyone_by_default() -> None:
    policy = ClientAddressPolicy()
    assert policy.client_ip("127.0.0.1", b" 100.96.1.10 , 10.0.0.1") == "100.96.1.10"
    assert policy.client_ip("127.0.0.1", None) == "127.0.0.1"
    assert policy.client_ip("127.0.0.1", b"") == "127.0.0.1"


def test_forwarded_for_believed_only_from_trusted_proxies() -> None:
    policy = ClientAddressPolicy.from_config(["10.0.0.0/8", "::1"])
    assert policy.client_ip("10.1.2.3", b"100.96.1.10") == "100.96.1.10"
    assert policy.client_ip("::1", b"100.96.1.10") == "100.96.1.10"
    assert policy.client_ip("192.0.2.1", b"100.96.1.10") == "192.0.2.1"
    assert policy.client_ip("::ffff:10.0.0.9", b"100.96.1.10") == "100.96.1.10"


def test_ipv6_peers_lose_brackets_and_mapped_ipv4_is_unwrapped() -> None:
    assert strip_peer("[2001:db8:cafe::20]") == "2001:db8:cafe::20"
    assert strip_peer("2001:db8:cafe::20") == "2001:db8:cafe::20"
    assert strip_peer("::ffff:100.96.1.10") == "100.96.1.10"


def test_location_and_links_escape_control_bytes() -> None:
    from mirrorbits.model import Mirror
    from mirrorbits.selection import Candidate
    from mirrorbits.web.render import link_headers

    first = Candidate(Mirror(), absolute_url="http://m/")
    assert redirect_url(first, "/a\nb.txt") == b"http://m/a%0Ab.txt"
    assert redirect_url(first, "/a b\x7f.txt") == b"http://m/a%20b%7F.txt"
    second = Candidate(Mirror(country_codes="FR"), absolute_url="http://n/")
    links = link_headers([second, second], "/a\r\nb \u00e9.txt", 5)
    assert links == [b"<http://n/a%0D%0Ab%20%C3%A9.txt>; rel=duplicate; pri=1; geo=fr"]


def test_precomputed_redirect_bytes_equal_the_per_request_rendering() -> None:
    from mirrorbits.model import Mirror
    from mirrorbits.selection import Candidate
    from mirrorbits.web.render import RedirectBytes, link_headers

    path = "/dir/a\r\nb \u00e9\udce9 #1 100%;?.txt"
    mirrors = [Mirror(country_codes="FR DE"), Mirror(country_codes=""), Mirror(country_codes="us")]
    bases = ["http://one/", "https://two/p%20b/", "http://three:8080/x y/"]
    encoded = RedirectBytes([(bases[0], ["FR", "DE"]), ("", []), (bases[1], []),
                             (bases[2], ["us"])], path)
    assert encoded.location(1) == b""
    candidates = [Candidate(m, absolute_url=b) for m, b in zip(mirrors, bases, strict=True)]
    order = [(3, 0.0), (0, 1.5), (2, 2.5)]  # entry indices: three, one, two
    chosen = [candidates[2], candidates[0], candidates[1]]
    assert encoded.location(3) == redirect_url(chosen[0], path)
    assert encoded.location(0) == redirect_url(candidates[0], path)
    assert encoded.location(3).startswith(b"http://three:8080/x%20y/dir/a%0D%0Ab%20%C3%A9%E9")
    for max_links in (0, 1, 2, 10):
        expected = link_headers(chosen, path, max_links)
        assert encoded.links(order, max_links) == expected
        assert encoded.link_lines(order, max_links) == b"".join(
            b"Link: " + value + b"\r\n" for value in expected)
    # Up to the formatted priorities, and beyond.
    many = [Candidate(Mirror(country_codes="FR"), absolute_url=f"http://m{i}/")
            for i in range(80)]
    encoded = RedirectBytes([(c.absolute_url, ["FR"]) for c in many], path)
    order = [(i, 0.0) for i in range(80)]
    for max_links in (62, 63, 64, 65, 79):
        assert encoded.links(order, max_links) == link_headers(many, path, max_links)


def test_evaluation_memo_reuses_answers_for_a_second_then_sees_the_disk(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")
    (tmp_path / "secret.txt").write_bytes(b"s")
    clock = Clock()
    memo = EvaluationMemo(clock, ttl=1.0)
    assert memo.evaluate(str(root), "/a.txt") == evaluate(str(root), "/a.txt")
    with pytest.raises(NotFound):
        memo.evaluate(str(root), "/new.txt")
    (root / "a.txt").unlink()
    (root / "new.txt").write_bytes(b"n")
    os.symlink("../secret.txt", root / "leak.txt")
    clock.advance(0.5)  # within the second: the remembered answers
    assert memo.evaluate(str(root), "/a.txt").is_file
    with pytest.raises(NotFound):
        memo.evaluate(str(root), "/new.txt")
    clock.advance(0.5)  # expired: the disk again
    with pytest.raises(NotFound):
        memo.evaluate(str(root), "/a.txt")
    assert memo.evaluate(str(root), "/new.txt").path == "/new.txt"
    with pytest.raises(Forbidden):
        memo.evaluate(str(root), "/leak.txt")
    with pytest.raises(Forbidden):  # remembered as forbidden too
        memo.evaluate(str(root), "/leak.txt")


def test_evaluation_memo_forgets_a_published_path_at_once(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "a.txt").write_bytes(b"a")
    memo = EvaluationMemo(Clock(), ttl=5.0)
    assert memo.evaluate(str(root), "/a.txt").is_file
    with pytest.raises(NotFound):
        memo.evaluate(str(root), "/b.txt")
    (root / "a.txt").unlink()
    (root / "b.txt").write_bytes(b"b")
    memo.forget("/a.txt")  # _mirrorbits_file_update /a.txt
    memo.forget("/b.txt")
    memo.forget("/never-asked.txt")
    with pytest.raises(NotFound):
        memo.evaluate(str(root), "/a.txt")
    assert memo.evaluate(str(root), "/b.txt").is_file


def test_evaluation_memo_keys_on_the_repository_and_stays_bounded(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    (one / "f").write_bytes(b"1")
    memo = EvaluationMemo(Clock(), capacity=3)
    assert memo.evaluate(str(one), "/f").is_file
    with pytest.raises(NotFound):  # a reload that changes Repository is seen at once
        memo.evaluate(str(two), "/f")
    for name in ("/x", "/y", "/z", "/w"):
        with pytest.raises(NotFound):
            memo.evaluate(str(one), name)
    assert len(memo._memo) <= 3


def _outcome(resolve: object, path: str) -> object:
    try:
        return resolve(path)  # type: ignore[operator]
    except (Forbidden, NotFound) as error:
        return type(error)


@pytest.mark.parametrize("form", ["plain", "trailing slash", "through a symlink", "root"])
def test_evaluation_memo_answers_what_evaluate_answers(repo: Path, form: str) -> None:
    os.symlink(".", repo / "up")
    os.symlink("..", repo / "outside")  # its entry "repo" is the repository itself
    os.symlink(repo, repo.parent / "alias")
    repository, base = {"plain": (str(repo), ""), "trailing slash": (str(repo) + "/", ""),
                        "through a symlink": (str(repo.parent / "alias"), ""),
                        "root": ("/", str(repo))}[form]
    memo = EvaluationMemo(Clock())
    paths = ["/a.txt", "/link.txt", "/latest/b.bin", "/dir/b.bin", "/dir/", "/dir", "/",
             "/leak.txt", "/broken", "/nothing", "/nothing/x", "/a.txt/x", "/a\x00b",
             "/a\x00b/c", "/../secret.txt", "/latest", "/broken/x", "/up/a.txt",
             "/up/latest/b.bin", "/outside/repo", "/outside/secret.txt", "/up/up/dir"]
    top = "/" + str(repo).split("/")[1]  # an entry of "/", the root form's repository
    for _ in range(2):  # resolved, then remembered
        for path in [base + path for path in paths] + [top]:
            assert _outcome(lambda p: memo.evaluate(repository, p), path) == _outcome(
                lambda p: evaluate(repository, p), path), path


def test_evaluation_memo_resolves_a_folder_once_for_its_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "repo"
    (root / "pool").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (root / "pool" / name).write_bytes(b"x")
    os.symlink("a", root / "pool" / "link")
    resolved: list[str] = []
    whole = paths_module._resolve

    def counting(absolute: str) -> tuple[str, bool]:
        resolved.append(absolute[len(str(root)):])
        return whole(absolute)

    monkeypatch.setattr(paths_module, "_resolve", counting)
    memo = EvaluationMemo(Clock())
    for name, real in (("a", "a"), ("b", "b"), ("c", "c"), ("link", "a")):
        assert memo.evaluate(str(root), f"/pool/{name}").path == f"/pool/{real}"
    # The folder once; then one lstat per plain file; a symlink is resolved whole.
    assert resolved == ["/pool", "/pool/link"]


def test_evaluation_memo_sees_a_relinked_folder_within_the_ttl_or_when_published(
        tmp_path: Path) -> None:
    root = tmp_path / "repo"
    for version in ("v1", "v2"):
        (root / version).mkdir(parents=True)
        for name in ("f.bin", "g.bin"):
            (root / version / name).write_bytes(b"x")
    os.symlink("v1", root / "latest")
    clock = Clock()
    memo = EvaluationMemo(clock, ttl=1.0)
    assert memo.evaluate(str(root), "/latest/f.bin").path == "/v1/f.bin"
    (root / "latest").unlink()
    os.symlink("v2", root / "latest")
    clock.advance(0.5)
    memo.evaluate(str(root), "/latest/g.bin")  # made from what the folder was at 0
    clock.advance(0.5)  # the folder's answer expired: so did the file's made from it
    assert memo.evaluate(str(root), "/latest/g.bin").path == "/v2/g.bin"
    assert memo.evaluate(str(root), "/latest/f.bin").path == "/v2/f.bin"
    (root / "latest").unlink()
    os.symlink("v1", root / "latest")
    memo.forget("/latest/f.bin")  # published: the path and its folder are resolved again
    assert memo.evaluate(str(root), "/latest/f.bin").path == "/v1/f.bin"
    (root / "v1" / "h.bin").write_bytes(b"x")
    assert memo.evaluate(str(root), "/latest/h.bin").path == "/v1/h.bin"  # a new name: lstat
