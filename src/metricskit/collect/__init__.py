"""Collection: the :class:`Collector`, its sources and derived metrics.

- :mod:`~metricskit.collect.collector`: runs sources on a clock-driven schedule and
  records what they return;
- :mod:`~metricskit.collect.sources`: system (psutil), HTTP health checks, databases and
  business metrics;
- :mod:`~metricskit.collect.derive`: metrics computed from other metrics.

Depends on the store and the recorder; alerting and reports build on it.
"""
