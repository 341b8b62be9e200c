#!/usr/bin/env bash
# One-step set-up on a fresh machine: Fashion-MNIST from Debian where apt is available (optional),
# a virtual environment in .venv, and cnnzoo installed into it (with the test extras given --test).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1; } \
        || echo "setup: Fashion-MNIST not installed from apt; the demo falls back to scikit-learn's digits"
fi
# The explorer's browser tests drive Debian's Chromium through its WebDriver (only for --test).
if [ "${1:-}" = "--test" ] && ! command -v chromedriver >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        apt-get install -y -q chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null 2>&1 \
                 && apt-get install -y -q chromium chromium-driver fonts-dejavu-core >/dev/null 2>&1; } \
            || echo "setup: chromium and chromium-driver not installed from apt; the browser tests will skip"
    else
        echo "setup: not root or no apt: install chromium and chromium-driver for the browser tests"
    fi
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"
.venv/bin/pip install -q --disable-pip-version-check -e ".${extras}"
