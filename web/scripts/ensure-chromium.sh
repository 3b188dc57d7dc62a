#!/usr/bin/env bash
# Makes sure Debian's Chromium is at /usr/bin/chromium for the browser tests,
# installing the Debian package when it is missing and this runs as root.
# Never downloads a browser build of its own. Fails loudly when it cannot.
set -euo pipefail

chromium=${CHROMIUM_PATH:-/usr/bin/chromium}
if [[ -x $chromium ]]; then
  echo "chromium: $("$chromium" --version 2>/dev/null | head -n1)"
  exit 0
fi
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "chromium: missing at $chromium, installing Debian's package" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
if [[ ! -x $chromium ]]; then
  echo "ERROR: Chromium is not installed at $chromium and could not be installed." >&2
  echo "       The browser tests cannot run. Install Debian's package: apt-get install chromium" >&2
  exit 1
fi
echo "chromium: $("$chromium" --version 2>/dev/null | head -n1)"
