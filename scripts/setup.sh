#!/usr/bin/env bash
# Set up a development environment on a fresh machine: Debian packages the interop tests
# start (Prometheus, promtool, Alertmanager, VictoriaMetrics, Chromium; openssl makes the TLS
# tests' certificates) when we are root with apt, then a virtualenv in .venv with
# metricskit, its extras and the backend plugins.
# Idempotent: re-running only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

want=(prometheus prometheus-alertmanager victoria-metrics chromium openssl)
missing=()
for pkg in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
        echo "setup: installing Debian packages: ${missing[*]}"
        apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "setup: not root or no apt-get; interop tests needing ${missing[*]} will skip" >&2
    fi
fi

python=${PYTHON:-python3}
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
extras=(-e '.[dev]')
# separately installable packages: storage plugins and the example third-party backend
for plugin in backends/*/ examples/custom_backend/; do
    [[ -f "$plugin/pyproject.toml" ]] && extras+=(-e "$plugin")
done
.venv/bin/python -m pip install -q "${extras[@]}"
echo "setup: ready (.venv)"
