"""Mirrors for the selection tests."""

from __future__ import annotations

from mirrorbits.model import Mirror

S = 1_000_000_000  # one second in ns


def mirror(ident: int = 1, /, **changes: object) -> Mirror:
    """An enabled, up, plain-HTTP mirror in Paris; ``changes`` override fields."""
    values: dict[str, object] = {
        "id": ident, "name": f"m{ident}", "http_url": f"http://m{ident}.example/",
        "enabled": True, "http_up": True, "https_up": True, "latitude": 48.8582,
        "longitude": 2.3387, "continent_code": "EU", "country_codes": "FR",
        "asnum": 1000 + ident, "last_successful_sync_precision": S,
    }
    values.update(changes)
    return Mirror(**values)  # type: ignore[arg-type]
