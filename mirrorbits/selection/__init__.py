"""Mirror selection (§9) and fallbacks (§8.7) as pure functions.

No I/O and no state of its own: the caller passes the mirrors and file information it read,
the client's GeoIP record, a ``random.Random`` and, for what must outlive one request, its
:class:`SelectionMemo`.  ``fast.py`` is the one implementation of the client rules, scores,
weights and order; ``select`` (candidates for JSON and the mirrorlist) is derived from it.
"""

from mirrorbits.selection.fast import (
    MAX_SELECTED,
    FullView,
    RedirectTable,
    full_view,
    redirect_order,
    redirect_table,
)
from mirrorbits.selection.filter import Prefiltered, client_reason, prefilter, same_asn
from mirrorbits.selection.generations import (
    GenerationIndexes,
    GenerationOutcome,
    IndexCopies,
    apply_generations,
)
from mirrorbits.selection.geo import distance_km
from mirrorbits.selection.memo import SelectionMemo
from mirrorbits.selection.rank import fallback_candidates, rank_order
from mirrorbits.selection.score import select
from mirrorbits.selection.types import Candidate, Secure, Selection, SelectionOptions

__all__ = [
    "MAX_SELECTED",
    "Candidate",
    "FullView",
    "GenerationIndexes",
    "GenerationOutcome",
    "IndexCopies",
    "Prefiltered",
    "RedirectTable",
    "Secure",
    "Selection",
    "SelectionMemo",
    "SelectionOptions",
    "apply_generations",
    "client_reason",
    "distance_km",
    "fallback_candidates",
    "full_view",
    "prefilter",
    "rank_order",
    "redirect_order",
    "redirect_table",
    "same_asn",
    "select",
]
