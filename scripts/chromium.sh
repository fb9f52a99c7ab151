#!/usr/bin/env bash
# Debian's Chromium and its chromedriver, for the review queue's browser test
# (tests/integration/test_review_browser.py). Never a downloaded browser build.
#
#   scripts/chromium.sh          # install if missing (root: apt-get), then print both paths
#
# Prints two lines, `chromium=PATH` and `chromedriver=PATH`. Re-runnable: nothing is installed
# when both are there. Not root and missing: exits 1 saying what to install.
set -euo pipefail

die() { echo "chromium.sh: $*" >&2; exit 1; }

find_browser() {
    local name
    for name in chromium chromium-browser; do
        command -v "$name" 2>/dev/null && return 0
    done
    return 1
}

find_driver() {
    command -v chromedriver 2>/dev/null && return 0
    [[ -x /usr/lib/chromium/chromedriver ]] && { echo /usr/lib/chromium/chromedriver; return 0; }
    return 1
}

if ! find_browser >/dev/null || ! find_driver >/dev/null; then
    [[ $(id -u) == 0 ]] || die "Chromium or chromedriver is missing; install them
  (Debian: apt-get install chromium chromium-driver) or run this script as root"
    echo "chromium.sh: installing chromium and chromium-driver with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt=(apt-get install -y -q --no-install-recommends chromium chromium-driver)
    # A fresh image often has no package lists yet; update only when the first try needs it.
    "${apt[@]}" >&2 || { apt-get update -q >&2 && "${apt[@]}" >&2; } \
        || die "apt-get install chromium chromium-driver failed"
    find_browser >/dev/null || die "chromium installed, but no chromium on PATH"
    find_driver >/dev/null || die "chromium-driver installed, but no chromedriver found"
fi
echo "chromium=$(find_browser)"
echo "chromedriver=$(find_driver)"
