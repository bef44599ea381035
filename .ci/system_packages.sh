#!/usr/bin/env bash
# Debian packages that some tests drive for real: Chromium (the run report in a browser) and a
# PostgreSQL server (several search workers on one study), and the arm64 root with qemu-user that
# tests/arm run LiteRT's aarch64 build in (.ci/arm_root.sh). `make test` runs this first; it
# installs what is missing when run as root and is a no-op otherwise. Where a package cannot be
# had, the tests that need it skip and say which package is missing.
set -uo pipefail
bash "$(dirname "$0")/arm_root.sh" || echo "no arm64 root: the tests under tests/arm skip" >&2
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
