"""The HTTP ``Site``: no per-request access logging, short idle timeout, no form parsing."""

from __future__ import annotations

from typing import Any

from twisted.web.http import HTTPChannel
from twisted.web.resource import Resource
from twisted.web.server import Request, Site


class RedirectorRequest(Request):
    """A request that never parses uploaded form bodies (a redirector needs none)."""

    def __init__(self, channel: HTTPChannel, *args: Any, **kwargs: Any) -> None:
        kwargs["parsePOSTFormSubmission"] = False
        super().__init__(channel, *args, **kwargs)


class RedirectorSite(Site):
    """A Site tuned for a redirector; downloads are logged by the resource itself."""

    displayTracebacks = False

    def __init__(self, resource: Resource, reactor: Any = None, timeout: float = 30) -> None:
        super().__init__(resource, requestFactory=RedirectorRequest, reactor=reactor)
        self.timeOut = timeout

    def log(self, request: Any) -> None:
        """No access log line per request (the download log covers what matters)."""
