#!/usr/bin/env bash
# Installs the Debian packages the test suite drives for real: chromium and a
# font (the end-user page's browser tests) and redis-server (the arq worker
# tests). Without root or apt it only reports what is missing; those tests
# then skip and say why.
set -euo pipefail

packages=(chromium fonts-dejavu-core redis-server)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    echo "note: ${missing[*]} not installed and not root; the tests that need them will be skipped" >&2
fi
