import metricskit
import metricskit.errors


def test_all_is_sorted_and_complete() -> None:
    exported = metricskit.__all__
    assert exported == sorted(exported)
    public = {name for name in vars(metricskit) if not name.startswith("_")}
    public -= {"annotations"}
    modules = {name for name in public if type(getattr(metricskit, name)).__name__ == "module"}
    assert public - modules <= set(exported)
    for name in exported:
        assert hasattr(metricskit, name), name


def test_every_error_subclasses_the_root() -> None:
    for name in metricskit.errors.__all__:
        obj = getattr(metricskit.errors, name)
        if isinstance(obj, type):
            assert issubclass(obj, metricskit.errors.MetricsKitError)
