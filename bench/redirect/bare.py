"""The baseline: the cheapest twisted.web answer a redirector could give (a fixed 302).

Usage: ``python -m bench.redirect.bare PORT`` (listens on 127.0.0.1 until terminated).
"""

from __future__ import annotations

import sys

from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class BareRedirect(Resource):
    """A leaf answering every request with ``302 Location: http://x/`` and an empty body."""

    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.redirect(b"http://x/")
        return b""


class QuietSite(Site):
    """A Site that does not log each request (as the daemon's does not)."""

    def log(self, request: object) -> None:
        """No access log."""


def main(argv: list[str]) -> None:
    from twisted.internet import reactor

    port = int(argv[1])
    reactor.listenTCP(port, QuietSite(BareRedirect()), interface="127.0.0.1")  # type: ignore[arg-type]
    reactor.run()


if __name__ == "__main__":
    main(sys.argv)
