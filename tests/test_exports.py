import importlib
import subprocess
import sys

import metricskit
import metricskit.errors


def test_all_is_sorted_and_complete() -> None:
    exported = metricskit.__all__
    assert exported == sorted(exported)
    ours = {
        name
        for name, obj in vars(metricskit).items()
        if not name.startswith("_") and getattr(obj, "__module__", "").startswith("metricskit")
    }
    assert ours <= set(exported)
    for name in exported:
        assert getattr(metricskit, name) is not None, name


def test_lazy_exports_resolve_to_their_modules() -> None:
    for name, module in metricskit._LAZY.items():
        obj = getattr(metricskit, name)
        expected = importlib.import_module(module)
        assert obj is (expected if name == "sources" else getattr(expected, name))


def test_import_does_not_pull_in_heavy_dependencies() -> None:
    code = (
        "import sys, metricskit; "
        "print(sorted(m for m in ('sqlalchemy', 'pandas', 'pydantic', 'requests', 'pyarrow') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_error_subclasses_the_root() -> None:
    for name in metricskit.errors.__all__:
        obj = getattr(metricskit.errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, metricskit.errors.MetricsKitError)
