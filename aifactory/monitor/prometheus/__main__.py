"""``python -m aifactory.monitor.prometheus``: Prometheus as a child of ``aifactory up``
(``--with-prometheus``), on ``AIFACTORY_MONITOR__PROMETHEUS_PORT``."""

from __future__ import annotations

import sys

from aifactory.monitor.prometheus import PrometheusError, run_prometheus
from aifactory.shared.localstack import local_settings
from aifactory.shared.settings import load_settings

if __name__ == "__main__":
    settings = local_settings(load_settings())
    try:
        run_prometheus(settings, port=settings.monitor.prometheus_port or 9090)
    except PrometheusError as exc:
        sys.exit(f"aifactory prometheus: {exc}")
