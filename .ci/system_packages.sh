#!/usr/bin/env bash
# Debian packages that some tests drive for real: Chromium (the run report in a browser) and a
# PostgreSQL server (several search workers on one study). `make test` runs this first; it
# installs what is missing when run as root and is a no-op otherwise. Where a package cannot be
# had, the tests that need it skip and say which package is missing.
set -uo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || need+=(postgresql)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
    echo "system packages missing (not root, not installed): ${need[*]}; the tests that need them skip" >&2
    exit 0
fi
echo "installing system packages for the tests: ${need[*]}" >&2
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"; } >/dev/null; then
    echo "could not install ${need[*]}; the tests that need them skip" >&2
fi
exit 0
