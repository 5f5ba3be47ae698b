"""Value types of the mirror selection (§9): options, per-request candidates, the result."""

from __future__ import annotations

import enum

from attrs import define, field, frozen

from mirrorbits.model import FileInfo, Mirror, OutdatedRule


class Secure(enum.Enum):
    """What the request demands of the mirror's protocol (§8.1 "secure option")."""

    UNDEFINED = 0
    WITH_TLS = 1
    WITHOUT_TLS = 2


@frozen
class SelectionOptions:
    """The configuration values the selection depends on (all live-reloadable)."""

    weight_distribution_range: float = 1.5
    allow_outdated_files: tuple[OutdatedRule, ...] = ()
    fix_timezone_offsets: bool = False


@define
class Candidate:
    """A per-request view of one mirror; the cached :class:`Mirror` is never mutated.

    ``distance`` is float32 km (0 when the client has no valid location), ``weight`` a float32
    percentage (0 = unweighted), ``absolute_url`` the base URL to redirect to (empty for a
    disabled mirror), ``exclude_reason`` empty for an accepted mirror.
    """

    mirror: Mirror
    file: FileInfo | None = None
    distance: float = 0.0
    computed_score: int = 0
    absolute_url: str = ""
    exclude_reason: str = ""
    weight: float = 0.0


@frozen
class Selection:
    """The outcome of :func:`select`: ordered mirrors, excluded ones, number of weighted ones."""

    mirrors: list[Candidate] = field(factory=list)
    excluded: list[Candidate] = field(factory=list)
    weighted: int = 0
