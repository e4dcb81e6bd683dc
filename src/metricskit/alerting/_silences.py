"""Silences: mute the notifications of matching alerts for a while; the alerts stay active."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass

from metricskit.model import Tags

__all__ = ["Silence", "Silences"]


@dataclass(frozen=True)
class Silence:
    """Mutes notifications of matching alerts until ``until_ns``; the alerts stay active.

    ``rule`` ``None`` matches every rule; ``tags`` must all be carried by the series.
    """

    id: int
    rule: str | None
    tags: Tags
    until_ns: int
    comment: str = ""

    def matches(self, rule: str, tags: Tags, now_ns: int) -> bool:
        """True while active for an alert of ``rule`` on a series with ``tags``."""
        if now_ns >= self.until_ns or (self.rule is not None and self.rule != rule):
            return False
        return all(tags.get(k) == v for k, v in self.tags.items_tuple)


class Silences:
    """The silences of one rule engine, numbered from 1 in the order they were added."""

    def __init__(self) -> None:
        self._items: list[Silence] = []
        self._lock = threading.Lock()

    def add(
        self, rule: str | None, tags: Mapping[str, str], until_ns: int, comment: str = ""
    ) -> Silence:
        """A new silence of ``rule`` (any if ``None``) and ``tags`` until ``until_ns``."""
        tags = Tags(tags)
        with self._lock:
            s = Silence(len(self._items) + 1, rule, tags, until_ns, comment)
            self._items.append(s)
        return s

    def active(self, now_ns: int) -> list[Silence]:
        """The silences that have not expired at ``now_ns``."""
        with self._lock:
            return [s for s in self._items if s.until_ns > now_ns]

    def mutes(self, rule: str, tags: Tags, now_ns: int) -> bool:
        """True if a silence mutes ``rule``'s alert on a series with ``tags`` at ``now_ns``."""
        # unlocked: it runs per alert event, and a list append is atomic to its readers
        return any(s.matches(rule, tags, now_ns) for s in self._items)
