"""Mirror selection (§9) and fallbacks (§8.7) as pure functions.

No I/O: the caller passes the mirrors and file information it read, the client's GeoIP record
and a ``random.Random``; nothing here touches global state.
"""

from mirrorbits.selection.fast import RedirectTable, redirect_order, redirect_table
from mirrorbits.selection.filter import Prefiltered, filter_candidates, prefilter, same_asn
from mirrorbits.selection.geo import distance_km
from mirrorbits.selection.rank import fallback_candidates, rank_order
from mirrorbits.selection.score import MAX_SELECTED, score_candidates, select
from mirrorbits.selection.types import Candidate, Secure, Selection, SelectionOptions

__all__ = [
    "MAX_SELECTED",
    "Candidate",
    "Prefiltered",
    "RedirectTable",
    "Secure",
    "Selection",
    "SelectionOptions",
    "distance_km",
    "fallback_candidates",
    "filter_candidates",
    "prefilter",
    "rank_order",
    "redirect_order",
    "redirect_table",
    "same_asn",
    "score_candidates",
    "select",
]
