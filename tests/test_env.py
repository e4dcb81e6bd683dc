"""``${VAR}`` substitution is told the channel names by the channel models, not a copy."""

from __future__ import annotations

from typing import get_args

import pytest

from metricskit._env import substitute_env
from metricskit._yaml import load_yaml_text
from metricskit.alerting.channels.config import (
    CHANNEL_SECTIONS,
    ChannelConfig,
    NotificationsConfig,
)
from metricskit.errors import ConfigError

TEXT = """\
notifications:
  pager: {url: "${PAGER_URL_NOT_SET}"}
  slack: {webhook_url: "${SLACK_URL_NOT_SET}"}
"""


def test_channel_sections_are_the_fields_holding_a_channel_model() -> None:
    fields = NotificationsConfig.model_fields
    expected = {
        name
        for name, field in fields.items()
        if any(
            isinstance(t, type) and issubclass(t, ChannelConfig) for t in get_args(field.annotation)
        )
    }
    assert set(CHANNEL_SECTIONS) == expected == {"slack", "email", "webhook", "alertmanager"}
    assert "log" not in CHANNEL_SECTIONS and "delivery" not in CHANNEL_SECTIONS


def test_an_unset_variable_switches_off_only_the_channels_it_is_told() -> None:
    doc = load_yaml_text(TEXT, "monitoring.yaml")
    substituted, unavailable = substitute_env(doc, channels=("pager", "slack"))
    assert substituted.data == {"notifications": {}}
    assert sorted(unavailable) == ["pager", "slack"]
    assert "PAGER_URL_NOT_SET" in unavailable["pager"]


def test_an_unset_variable_elsewhere_is_an_error_with_its_line() -> None:
    doc = load_yaml_text(TEXT, "monitoring.yaml")
    with pytest.raises(ConfigError, match="PAGER_URL_NOT_SET") as info:
        substitute_env(doc, channels=("slack",))
    assert "monitoring.yaml:2" in str(info.value)
