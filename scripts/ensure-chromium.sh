#!/usr/bin/env bash
# Run before the tests (pnpm's pretest): the browser tests drive Debian's Chromium through
# playwright-core, which never downloads a browser of its own. Installs it with apt-get when it is
# missing and we may (root, or a sudo that does not prompt); otherwise says what to install.
set -u
chromium_path=${CHROMIUM_PATH:-/usr/bin/chromium}
[[ -x $chromium_path ]] && exit 0
as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"; else return 1; fi
}
if command -v apt-get >/dev/null 2>&1; then
  echo "chromium not found at $chromium_path: installing Debian's chromium for the browser tests" >&2
  if as_root env DEBIAN_FRONTEND=noninteractive timeout 300 bash -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium' >/tmp/longhaul-chromium-apt.log 2>&1; then
    exit 0
  fi
  echo "could not install chromium (see /tmp/longhaul-chromium-apt.log)" >&2
fi
echo "The browser tests need Chromium: install it (apt-get install chromium) or set CHROMIUM_PATH." >&2
exit 0
