#!/usr/bin/env bash
# Debian's Chromium and its WebDriver, for the console's browser tests (tests/integration/test_console_browser.py).
# Idempotent: installs only what is missing (as root, or through sudo). Selenium is told the two binaries'
# paths and runs offline (SE_OFFLINE=true), so nothing else is ever downloaded at test time.
#
#   scripts/browser.sh install    install chromium and chromium-driver if missing
#   scripts/browser.sh check      exit 0 when both binaries are there (prints their versions)
set -euo pipefail

CHROMIUM=/usr/bin/chromium
CHROMEDRIVER=/usr/bin/chromedriver

log() { printf '[browser] %s\n' "$*" >&2; }
die() { printf '[browser] error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if ((EUID == 0)); then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "need root for: $*"
    fi
}

present() { [[ -x "$CHROMIUM" && -x "$CHROMEDRIVER" ]]; }

install() {
    if present; then return 0; fi
    command -v apt-get >/dev/null || die "no apt-get: install Chromium and its chromedriver at $CHROMIUM and $CHROMEDRIVER"
    log "installing Debian packages: chromium chromium-driver"
    # a bounded wait for dpkg's lock: another install may be running (services.sh, a parallel run)
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q \
        --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
    present || die "installed chromium and chromium-driver, but $CHROMIUM or $CHROMEDRIVER is missing"
}

check() {
    present || { log "missing $CHROMIUM or $CHROMEDRIVER: run scripts/browser.sh install"; return 1; }
    "$CHROMIUM" --version >&2
    "$CHROMEDRIVER" --version >&2
}

case "${1:-}" in
    install) install; check ;;
    check) check ;;
    *) die "usage: scripts/browser.sh install|check" ;;
esac
