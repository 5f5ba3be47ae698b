"""Mirror health checks (spec §7): periodic HEAD requests that record each mirror's state."""

from __future__ import annotations

from mirrorbits.health.checker import HealthChecker

__all__ = ["HealthChecker"]
