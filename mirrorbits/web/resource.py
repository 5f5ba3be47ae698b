"""The redirect resource: one leaf answering every path (spec §8), a dispatcher.

A request read by twisted.web (:meth:`RedirectResource.render`) or by the channel's quick
parser (:meth:`RedirectResource.answer_head`) goes the same way: :mod:`~mirrorbits.web.plan`
decides (a :data:`~mirrorbits.web.decision.Decision`), :mod:`~mirrorbits.web.accounting`
logs and counts a served download, :mod:`~mirrorbits.web.respond` makes the status, headers
and body, sent through twisted.web or as bytes by the channel.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from mirrorbits.config import Config
from mirrorbits.logs import Logger
from mirrorbits.web.accounting import record
from mirrorbits.web.context import FileMemo, WebContext
from mirrorbits.web.decision import Decision, Download, ErrorText, Json, Pending, Redirect
from mirrorbits.web.head import RequestHead, TwistedHead
from mirrorbits.web.plan import Planner
from mirrorbits.web.respond import RedirectWire, Response, respond, send, wire

__all__ = ["FileMemo", "RedirectResource", "WebContext"]

log = Logger()

_INTERNAL_ERROR = ErrorText(500, "Internal Server Error")


class RedirectResource(Resource):
    """Answers every request: redirect, JSON, checksum, statistics or an error."""

    isLeaf = True

    def __init__(self, ctx: WebContext) -> None:
        super().__init__()
        self.ctx = ctx
        self.planner = Planner(ctx)
        self._in_memory = True
        # The redirect's pieces, GET then HEAD, for the configuration they were cut for.
        self._wire_config: Config | None = None
        self._wires: tuple[RedirectWire, RedirectWire] | None = None

    @property
    def fast_redirects(self) -> bool:
        """Whether the channel answers from memory and redirects use the memo's table
        (tests turn it off to compare with the general path)."""
        return self._in_memory

    @fast_redirects.setter
    def fast_redirects(self, value: bool) -> None:
        self._in_memory = self.planner.redirect_tables = value

    def render(self, request: Request) -> int:
        """Answer a twisted.web request: now when memory holds the answer, else later."""
        request.defaultContentType = None
        head = TwistedHead(request)
        try:
            planned = self.planner.plan(head)
        except Exception:
            log.failure("request for {path} failed", path=request.path)
            planned = _INTERNAL_ERROR
        if isinstance(planned, Pending):
            answer: Deferred[Decision] = Deferred.fromCoroutine(self._settle(head, planned))
            answer.addCallback(self._send_later, request, head)
            request.notifyFinish().addErrback(lambda _: None)
            return NOT_DONE_YET
        send(request, self._response(head, planned))
        return NOT_DONE_YET

    def answer_head(self, head: RequestHead, date: bytes) -> bytes | None:
        """The whole response to a request read by the channel, or None to let twisted.web
        answer it (the plan has to wait). The same bytes as :meth:`render` gives."""
        if not self._in_memory:
            return None
        planned = self.planner.plan(head)
        if isinstance(planned, Pending):
            return None  # nothing happened yet: twisted.web plans it again
        if type(planned) is Redirect:  # the commonest answer, from its precut pieces
            config = self.ctx.config()
            if not config.gzip:
                self._account(head, planned, planned.download)
                return self._redirect_wire(config)[head.method == b"HEAD"].answer(planned, date)
        return wire(self._response(head, planned), date)

    def _redirect_wire(self, config: Config) -> tuple[RedirectWire, RedirectWire]:
        wires = self._wires
        if wires is None or config is not self._wire_config:
            server = self.ctx.server_header
            wires = self._wires = (RedirectWire(config, server, False),
                                   RedirectWire(config, server, True))
            self._wire_config = config
        return wires

    def _account(self, head: RequestHead, decision: Decision, download: Download | None) -> None:
        """Count the answer (metrics) and account for a served download."""
        self.ctx.counts.count(decision)
        if download is not None:
            record(self.ctx, head, download)

    def _response(self, head: RequestHead, decision: Decision) -> Response:
        """Count the answer (metrics), account for a served download, then serialize
        ``decision``."""
        download = decision.download if isinstance(decision, Redirect | Json) else None
        self._account(head, decision, download)
        return respond(decision, head, self.ctx.config(), self.ctx.server_header)

    async def _settle(self, head: RequestHead, pending: Pending) -> Decision:
        try:
            return await pending.resume()
        except Exception:
            log.failure("request for {path} failed", path=head.path)
            return _INTERNAL_ERROR

    def _send_later(self, decision: Decision, request: Request, head: RequestHead) -> None:
        response = self._response(head, decision)
        if request.finished or request.channel is None:
            return
        send(request, response)
