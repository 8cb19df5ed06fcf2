"""The projections, registered by name. Adding one: see docs/analytics.md, "How to write a new projection"."""

from __future__ import annotations

from services.analytics.projections import customer360, funnel, leaderboard, pool_time, response_time
from services.analytics.projections.base import Fact, Projection

REGISTRY: dict[str, Projection] = {
    module.PROJECTION.name: module.PROJECTION for module in (customer360, funnel, response_time, leaderboard, pool_time)
}

__all__ = ["REGISTRY", "Fact", "Projection"]
