#!/usr/bin/env bash
# Builds the QEMU TCG plugin that counts executed aarch64 instructions (.ci/arm_icount.c) for
# benchmarks/arm_instructions.py. Debian's qemu-user-static has no plugin support ("unknown option
# 'plugin'") and no package ships a counting plugin; the dynamic qemu-user of bookworm (7.2) has it.
# The plugin API header comes from Debian's qemu source package (apt-get source, with a deb-src list
# of its own in a temporary folder: the system's apt sources are not touched). Idempotent.
# Usage: .ci/arm_icount_plugin.sh [OUT.so] (default ~/.cache/mobileseg/qemu-icount/libicount.so).
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$HOME/.cache/mobileseg/qemu-icount/libicount.so}"
if [ -f "$out" ] && [ "$out" -nt .ci/arm_icount.c ] && command -v qemu-aarch64 >/dev/null 2>&1; then
    echo "$out"
    exit 0
fi
missing=()
command -v qemu-aarch64 >/dev/null 2>&1 || missing+=(qemu-user)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "icount plugin: ${missing[*]} missing and not root to install them" >&2; exit 1; }
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mirror="${MOBILESEG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
mkdir -p "$work/lists/partial"
echo "deb-src $mirror bookworm main" >"$work/sources.list"
apt=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$work/lists" -o APT::Sandbox::User=root)
apt-get -qq "${apt[@]}" update >/dev/null
version=$(dpkg-query -W -f '${source:Version}' qemu-user)
(cd "$work" && apt-get -qq "${apt[@]}" source --download-only "qemu=$version" >/dev/null)
tar -xJf "$work"/qemu_*.orig.tar.xz -C "$work" --wildcards '*/include/qemu/qemu-plugin.h'
mkdir -p "$(dirname "$out")"
gcc -O2 -Wall -shared -fPIC -I "$(dirname "$work"/qemu-*/include/qemu/qemu-plugin.h)" -o "$out" .ci/arm_icount.c
echo "$out"
