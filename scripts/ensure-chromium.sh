#!/usr/bin/env bash
# Installs what the console's browser tests need when it is missing:
# Debian's chromium and chromium-driver (driven through WebDriver by the
# tests) and a CJK font, so the Chinese labels render in the screenshots.
# Idempotent and quiet when everything is there. Fails loudly when it
# cannot install: the browser tests never skip.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if ! fc-list 2>/dev/null | grep -qi "wenquanyi\|noto sans cjk"; then
    missing+=(fonts-wqy-microhei)
fi
if [ "${#missing[@]}" -eq 0 ]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "ensure-chromium: ${missing[*]} missing and apt-get is not available; install Chromium and chromedriver by hand (or set WXGATE_CHROMIUM / WXGATE_CHROMEDRIVER)" >&2
    exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

echo "ensure-chromium: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for tool in chromium chromedriver; do
    command -v "$tool" >/dev/null 2>&1 || { echo "ensure-chromium: $tool still missing after the install" >&2; exit 1; }
done
