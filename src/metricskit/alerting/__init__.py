"""Alerting: rules, their per-series state, silences, and delivery to channels.

- :mod:`~metricskit.alerting.rules_model`: alert and recording rules as loaded from YAML
  (the seed's ``metric``/``threshold`` rules, PromQL ``expr:`` rules, Prometheus groups);
- :mod:`~metricskit.alerting.engine`: :class:`RuleEngine`, which evaluates them on a clock
  and keeps each alert's state in the store, so a restart or a second process resumes it;
- :mod:`~metricskit.alerting.performance_rules`: the seed's performance thresholds as
  built-in PromQL rules;
- :mod:`~metricskit.alerting.notify` and :mod:`~metricskit.alerting.channels`: the
  :class:`Notifier` and the Slack, email, webhook, Alertmanager and log channels;
- :mod:`~metricskit.alerting.events`: :class:`AlertEvent`, the one alert type everything
  above passes around.

Depends on storage, query and collect (derivations); nothing below imports it.
"""
