"""``${VAR}`` and ``${VAR:-default}`` in a loaded YAML document, from the environment.

The config loader and ``RuleEngine.from_yaml`` read the same files, so both substitute
here. A variable that is not set is a :class:`~metricskit.errors.ConfigError` naming it
and its line; inside a notification channel it only switches that channel off, because
only what sends there needs it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Hashable
from typing import Any

from metricskit._yaml import YamlDocument
from metricskit.errors import ConfigError

__all__ = ["substitute_env"]

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _substitute(doc: YamlDocument, value: Any, path: tuple[Hashable, ...]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name, default)
            if found is None:
                raise doc.error(
                    f"environment variable {name} is not set (used in {'.'.join(map(str, path))})",
                    path,
                )
            return found

        return _VAR.sub(replace, value)
    if isinstance(value, dict):
        return {k: _substitute(doc, v, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(doc, v, (*path, i)) for i, v in enumerate(value)]
    return value


def substitute_env(
    doc: YamlDocument, *, channels: Collection[str]
) -> tuple[YamlDocument, dict[str, str]]:
    """``doc`` with ``${VAR}`` substituted, and the notification channels left out.

    A variable that is not set is an error naming it and its line, except inside a
    ``notifications`` section named in ``channels`` (the channel models' names,
    :data:`metricskit.alerting.channels.config.CHANNEL_SECTIONS`, passed in because this
    module sits below alerting): only what sends to that channel needs it, so the
    channel is left out and returned with the reason.
    """
    raw = doc.data
    if not isinstance(raw, dict):
        return doc, {}
    data: dict[str, Any] = {}
    unavailable: dict[str, str] = {}
    for name, value in raw.items():
        if name == "notifications" and isinstance(value, dict):
            data[name] = {}
            for key, section in value.items():
                try:
                    data[name][key] = _substitute(doc, section, (name, key))
                except ConfigError as exc:
                    disabled = isinstance(section, dict) and section.get("enabled") is False
                    if key not in channels:
                        raise
                    if not disabled:
                        unavailable[str(key)] = str(exc)
        else:
            data[name] = _substitute(doc, value, (name,))
    return YamlDocument(data, doc.locator, doc.path), unavailable
