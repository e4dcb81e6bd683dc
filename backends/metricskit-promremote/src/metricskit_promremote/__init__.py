"""metricskit storage backends that speak the Prometheus remote-write protocol.

- ``victoriametrics://host:8428``: VictoriaMetrics single-node (remote write in,
  ``/api/v1/export`` out, whole-series deletes, ``/internal/force_flush``).
- ``promremote://host:9090``: any Prometheus-compatible receiver with the Prometheus HTTP
  query API: Prometheus (``--web.enable-remote-write-receiver``), Mimir, Cortex, Thanos
  Receive + Query.

Both register through the ``metricskit.backends`` entry point, so
``metricskit.open_store("victoriametrics://127.0.0.1:8428")`` finds them once this package
is installed. Append ``+https`` to the scheme for TLS (``victoriametrics+https://...``).
"""

from __future__ import annotations

from metricskit_promremote.naming import DEFAULT_NAME_LABEL, key_from_labels, labels_for
from metricskit_promremote.prometheus import PromRemoteBackend
from metricskit_promremote.remote import RemoteOptions, RemoteWriteBackend
from metricskit_promremote.victoriametrics import VictoriaMetricsBackend

__all__ = [
    "DEFAULT_NAME_LABEL",
    "PromRemoteBackend",
    "RemoteOptions",
    "RemoteWriteBackend",
    "VictoriaMetricsBackend",
    "key_from_labels",
    "labels_for",
]
