"""The selection as candidates (JSON answers, the mirrorlist page, the general redirect path).

Nothing is decided here: :func:`select` turns ``fast.full_view`` (the one implementation of
rules 4 to 7, scores, weights, draws and order) into :class:`Candidate` objects.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from mirrorbits.model import FileInfo, GeoRecord
from mirrorbits.selection.fast import RedirectTable, full_view, redirect_table
from mirrorbits.selection.filter import Entry, Prefiltered, prefilter
from mirrorbits.selection.types import Candidate, Secure, Selection, SelectionOptions


def select(
    local: FileInfo,
    entries: Sequence[Entry],
    client: GeoRecord,
    secure: Secure,
    opts: SelectionOptions,
    rng: random.Random,
    mirrorlist: bool = False,
    pre: Prefiltered | None = None,
    table: RedirectTable | None = None,
) -> Selection:
    """Run the whole selection of §9 for one request.

    ``table`` (``redirect_table(pre)``, built once per file by the caller) or else ``pre``
    (``prefilter`` of the same arguments) or else ``entries`` (mirror, its ``FILEINFO``) give
    the mirrors.  An unknown local mtime (file not in Redis) gives an empty selection (the
    caller falls back).  Equal scores keep entry order (the reference's sort is unstable in
    general, but stable for the small lists where it uses insertion sort).
    """
    if local.mod_time_ns is None:
        return Selection()
    if table is None:
        table = redirect_table(pre if pre is not None else prefilter(local, entries, secure, opts))
    view = full_view(table, client, opts.weight_distribution_range, rng, mirrorlist)
    listed = table.pre.entries
    mirrors = []
    for index, distance, score, weight in view.mirrors:
        mirror, mirror_file, url, _, _ = listed[index]
        mirrors.append(Candidate(mirror, mirror_file, distance, score, url, "", weight))
    excluded = []
    for index, distance, reason in view.excluded:
        mirror, mirror_file, url, _, _ = listed[index]
        excluded.append(Candidate(mirror, mirror_file, distance, 0, url, reason))
    return Selection(mirrors, excluded, view.weighted)
