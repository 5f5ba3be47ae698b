"""Read a ``?mirrorlist`` page as a person does: the texts, the rows, the links (html.parser)."""

from __future__ import annotations

from html.parser import HTMLParser
from typing import Any

from attrs import define, field

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


@define
class Node:
    tag: str
    attrs: dict[str, str]
    children: list[Node | str] = field(factory=list)

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Any:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for node in self.iter():
            if tag is not None and node.tag != tag:
                continue
            if all(_matches(node, k.rstrip("_"), v) for k, v in attrs.items()):
                found.append(node)
        return found

    def find(self, tag: str | None = None, **attrs: str) -> Node | None:
        nodes = self.find_all(tag, **attrs)
        return nodes[0] if nodes else None


def _matches(node: Node, name: str, value: str) -> bool:
    if name == "class":
        return value in node.attrs.get("class", "").split()
    return node.attrs.get(name) == value


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(node)
        if tag not in _VOID:
            self.stack.append(node)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Node(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.stack) - 1, 0, -1):
            if self.stack[index].tag == tag:
                del self.stack[index:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].children.append(data)


def parse_tree(html: str) -> Node:
    builder = _TreeBuilder()
    builder.feed(html)
    builder.close()
    return builder.root


def _cell(row: Node, name: str) -> Node:
    cell = row.find("td", class_=name)
    assert cell is not None, f"no {name} cell"
    return cell


def _mirror_row(row: Node) -> dict[str, Any]:
    """The cells both tables have: the mirror, its links, where it is and how far."""
    return {
        "shown_name": _cell(row, "name").text().strip(),
        "mirror": row.attrs.get("data-mirror"),
        "url_text": _cell(row, "url").text().strip(),
        "url_href": _href(_cell(row, "url")),
        "name_href": _href(_cell(row, "name")),
        "country": _cell(row, "country").text().strip(),
        "continent": _cell(row, "continent").text().strip(),
        "distance": _cell(row, "distance").text().strip(),
    }


def _href(cell: Node) -> str:
    link = cell.find("a")
    return link.attrs.get("href", "") if link is not None else ""


def _text(root: Node, tag: str | None = None, **attrs: str) -> str | None:
    node = root.find(tag, **attrs)
    return " ".join(node.text().split()) if node is not None else None


def read_page(html: str) -> dict[str, Any]:
    """The page as data, in the shape of the recorded reference pages (README §3.2)."""
    root = parse_tree(html)
    client_as = root.find("p", id="client-as")
    location = root.find("p", id="client-location")
    assert client_as is not None and location is not None
    client: dict[str, Any] = {
        "ip": _text(client_as, class_="ip"),
        "as_name": _text(client_as, class_="as-name"),
        "as_num": int(_text(client_as, class_="as-num") or "-1"),
        "located": "located" in location.attrs.get("class", "").split(),
        "sentences": " ".join((client_as.text() + " " + location.text()).split()),
    }
    if client["located"]:
        client["city"] = _text(location, class_="city") or ""
        client["country"] = _text(location, class_="country")
    info = root.find("p", id="file-info")
    assert info is not None
    file: dict[str, Any] = {"path": _text(info, class_="path"),
                            "sentence": " ".join(info.text().split())}
    if "not-scanned" in info.attrs.get("class", ""):
        file["not_scanned"] = True
    else:
        file.update(size_human=_text(info, class_="size-human"),
                    size_bytes=int(_text(info, class_="size-bytes") or "-1"),
                    modified=_text(info, class_="modified"))
    ranked = []
    table = root.find("table", id="mirror-table")
    for row in table.find("tbody").find_all("tr") if table is not None else []:  # type: ignore[union-attr]
        ranked.append({
            "rank": _cell(row, "rank").text().strip(),
            **_mirror_row(row),
            "selection": _cell(row, "selection").text().strip(),
            "weighted": "weighted" in row.attrs.get("class", "").split(),
        })
    excluded = []
    table = root.find("table", id="excluded-table")
    for row in table.find("tbody").find_all("tr") if table is not None else []:  # type: ignore[union-attr]
        excluded.append({**_mirror_row(row), "reason": _cell(row, "reason").text().strip()})
    return {
        "title": _text(root, "title"),
        "headline": _text(root, "h1"),
        "client_box": client,
        "file": file,
        "hashes_shown": {name: _text(root, "td", id=f"hash-{name.lower()}")
                         for name in ("MD5", "SHA1", "SHA256")},
        "ranked": ranked,
        "excluded": excluded,
        "fallback_warning": root.find(id="fallback-warning") is not None,
        # Ours only: why no mirror qualifies and what a download gets instead.
        "no_mirror": {"cause": _text(root, id="no-mirror-cause"),
                      "outcome": _text(root, id="download-outcome")}
        if root.find(id="no-mirror") is not None else None,
        "no_mirrors_message": root.find(id="no-mirrors") is not None,
        "footer": {"version": _text(root, class_="version"),
                   "hostname": _text(root, class_="hostname"),
                   "text": _text(root, "footer")},
        "links": [a.attrs.get("href", "") for a in root.find_all("a")],
        "tree": root,
    }
