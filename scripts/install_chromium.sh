#!/usr/bin/env bash
# Optional: Debian's headless Chromium and ChromeDriver for the demo pages' browser tests (tests/test_demo_apps*.py),
# so Selenium never downloads a browser. Needs root and apt-get (Debian/Ubuntu). Without them the browser tests skip
# and say how to enable them. CI (.ci/run) calls this before the tests.
set -euo pipefail

if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then
    echo "[chromium] already installed: $(chromium --version 2>/dev/null || echo chromium)"
    exit 0
fi
if ! command -v apt-get >/dev/null; then
    echo "[chromium] no apt-get here (not Debian/Ubuntu): install chromium and chromedriver yourself to run the browser tests" >&2
    exit 1
fi
if [ "$(id -u)" != 0 ]; then
    echo "[chromium] apt-get needs root: run sudo bash scripts/install_chromium.sh" >&2
    exit 1
fi

echo "[chromium] apt-get install chromium chromium-driver"
updated=0
for attempt in 1 2 3 4 5 6 7 8 9 10; do  # retried while another apt/dpkg holds the lock
    if [ "$updated" = 0 ] && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 update -qq; then
        updated=1
    fi
    if [ "$updated" = 1 ] && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=60 install -y -qq \
            chromium chromium-driver >/dev/null; then
        echo "[chromium] installed: $(chromium --version 2>/dev/null || echo chromium)"
        exit 0
    fi
    echo "[chromium] apt-get failed (attempt $attempt; the dpkg lock may be held), retrying in 15 s" >&2
    sleep 15
done
echo "[chromium] could not install chromium chromium-driver" >&2
exit 1
