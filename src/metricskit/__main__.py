"""``python -m metricskit``: the same as the ``metricskit`` command."""

from metricskit.cli.commands import main

if __name__ == "__main__":
    main()
