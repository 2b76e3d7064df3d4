#!/usr/bin/env bash
# Install Debian's headless-capable Chromium when it is missing (the Flower screenshot of
# compat-tests/test_flower.py). Fails loudly when it cannot.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" != "0" ]; then
    echo "setup-browser: chromium is missing and this is not root: apt-get install chromium" >&2
    exit 1
fi
echo "setup-browser: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null || { echo "setup-browser: apt-get update failed" >&2; exit 1; }
apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null \
    || { echo "setup-browser: apt-get install chromium failed" >&2; exit 1; }
command -v chromium >/dev/null || { echo "setup-browser: chromium still not on PATH" >&2; exit 1; }
