"""What the request path counts for the metrics: plain integers in memory.

One :meth:`RequestCounts.count` per answered request (either parser), called where every
decision passes once (``RedirectResource._response``); turned into metric families only
when scraped. No lock: the reactor thread alone answers requests.
"""

from __future__ import annotations

from mirrorbits.web.decision import Decision, Json, NotModified, Redirect

OUTCOMES = ("redirect", "fallback", "json", "not_modified", "other", "4xx", "5xx")


class RequestCounts:
    """Requests by outcome, and redirects by chosen mirror (its name)."""

    __slots__ = ("outcomes", "redirects")

    def __init__(self) -> None:
        self.outcomes: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        self.redirects: dict[str, int] = {}

    def count(self, decision: Decision) -> None:
        """Count one answered decision."""
        if type(decision) is Redirect:
            download = decision.download
            self.outcomes["fallback" if download.fallback else "redirect"] += 1
            name = download.mirror.name
            redirects = self.redirects
            redirects[name] = redirects.get(name, 0) + 1
            return
        self.outcomes[outcome_of(decision)] += 1


def outcome_of(decision: Decision) -> str:
    """The ``outcome`` label of a decision other than a redirect."""
    if isinstance(decision, Redirect):
        return "fallback" if decision.download.fallback else "redirect"
    if isinstance(decision, NotModified):
        return "not_modified"
    status = getattr(decision, "status", 301)  # Moved has none: a 301
    if status >= 500:
        return "5xx"
    if status >= 400:
        return "4xx"
    if isinstance(decision, Json):
        return "json"
    return "other"  # the queries' pages (mirrorlist, stats, checksums) and the router's 301
