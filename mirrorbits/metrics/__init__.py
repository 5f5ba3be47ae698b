"""Prometheus metrics on ``MetricsListenAddress`` (see ``docs/metrics.md``).

The request path only increments plain integers (:mod:`~mirrorbits.metrics.counts`); the
monitoring services leave their last results in :mod:`~mirrorbits.metrics.observed`;
everything becomes metric families when ``/metrics`` is scraped
(:mod:`~mirrorbits.metrics.families`, served by :mod:`~mirrorbits.metrics.endpoint`).
"""
