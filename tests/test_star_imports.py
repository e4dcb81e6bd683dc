"""``from metricskit.<module> import *`` works for every public module (issue 11 item 17)."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import metricskit
from metricskit.testing.require import missing as missing_dependency


def _public_modules() -> list[str]:
    found = ["metricskit"]
    for info in pkgutil.walk_packages(metricskit.__path__, "metricskit."):
        if not any(part.startswith("_") for part in info.name.split(".")[1:]):
            found.append(info.name)
    return sorted(found)


def test_the_walk_finds_the_public_modules() -> None:
    modules = _public_modules()
    assert {"metricskit.query.aggregate", "metricskit.recorder", "metricskit.storage.base"} <= set(
        modules
    )
    assert not any("._" in m for m in modules)


@pytest.mark.parametrize("module", _public_modules())
def test_star_import_resolves_every_name_in_all(module: str) -> None:
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:  # an optional extra that is not installed
        missing_dependency(f"{module}: {exc}")
    # A package whose __init__ only documents it has no __all__; * then imports nothing.
    names = getattr(mod, "__all__", [])
    missing = [n for n in names if not hasattr(mod, n)]
    assert missing == [], f"{module}.__all__ lists names it does not define: {missing}"
    namespace: dict[str, object] = {}
    exec(f"from {module} import *", namespace)
    assert set(names) <= set(namespace)
