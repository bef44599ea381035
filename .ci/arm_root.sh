#!/usr/bin/env bash
# Makes the arm64 Debian root that `mobileseg.bench --arm_emulated` runs LiteRT's aarch64 build in,
# under qemu-user (mobileseg/arm/). Idempotent: a root whose marker names the pinned versions is
# kept. Usage: .ci/arm_root.sh [ROOT]; ROOT defaults to $MOBILESEG_ARM_ROOT, else
# ~/.cache/mobileseg/arm64-root. Needs root (apt-get, debootstrap) and the Debian mirror and PyPI.
#
# How: qemu-user-static and debootstrap from apt; `debootstrap --download-only` resolves and fetches
# bookworm's arm64 minbase + python3.11; each .deb is unpacked with dpkg-deb (no maintainer scripts,
# so no chroot and no binfmt_misc, which containers rarely have); pip installs the aarch64 wheels of
# ai-edge-litert, numpy, PyYAML and pillow (what mobileseg.inference imports), pinned as in requirements.txt,
# into ROOT/opt/mobileseg/site-packages.
# qemu 7.2 shows the emulated program this machine's x86 /proc/cpuinfo, on which the cpuinfo library
# of XNNPACK and ruy crashes (SIGSEGV in allocate_tensors): ROOT/proc/cpuinfo describes Cortex-A76
# cores instead (qemu opens ROOT/PATH before PATH); the ISA extensions XNNPACK uses still come from
# the hwcaps qemu sets from -cpu. The root is built beside ROOT and moved into place only once the
# emulated python imports them.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-${MOBILESEG_ARM_ROOT:-$HOME/.cache/mobileseg/arm64-root}}"
mirror="${MOBILESEG_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
py="${PY:-.venv/bin/python}"
[ -x "$py" ] || py=python3
site=/opt/mobileseg/site-packages
pins=()
for name in ai-edge-litert numpy PyYAML pillow; do
    pin=$(grep -E "^${name}==" requirements.txt) || { echo "arm root: requirements.txt pins no ${name}" >&2; exit 1; }
    pins+=("$pin")
done
want="debian bookworm arm64 python3.11 cpuinfo-cortex-a76 ${pins[*]}"
marker="$root/.mobileseg-arm-root"
if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ] && [ -x "$root/usr/bin/python3.11" ]; then
    echo "arm64 root ready: $root"
    exit 0
fi
missing=()
command -v qemu-aarch64-static >/dev/null 2>&1 || missing+=(qemu-user-static)
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then
        echo "arm root: ${missing[*]} missing and not root to install them" >&2
        exit 1
    fi
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        "${missing[@]}"; } >/dev/null || { echo "arm root: could not install ${missing[*]}" >&2; exit 1; }
fi
if [ "$(id -u)" != 0 ]; then
    echo "arm root: debootstrap needs root" >&2
    exit 1
fi
start=$SECONDS
partial="$root.partial"
rm -rf "$partial"
mkdir -p "$partial"
trap 'rm -rf "$partial"' EXIT
echo "making the arm64 root in $root (debootstrap from $mirror, then the aarch64 wheels)" >&2
debootstrap --arch=arm64 --variant=minbase --download-only --include=python3.11 \
    bookworm "$partial" "$mirror" >"$partial.log" 2>&1 \
    || { echo "arm root: debootstrap failed (log: $partial.log)" >&2; exit 1; }
for deb in "$partial"/var/cache/apt/archives/*.deb; do
    dpkg-deb -x "$deb" "$partial"
done
rm -f "$partial"/var/cache/apt/archives/*.deb
cores=$(nproc)
mkdir -p "$partial/proc" "$partial/sys/devices/system/cpu"
for ((i = 0; i < cores; i++)); do
    printf 'processor\t: %d\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n' "$i"
done >"$partial/proc/cpuinfo"
for name in possible present online; do echo "0-$((cores - 1))" >"$partial/sys/devices/system/cpu/$name"; done
"$py" -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$partial$site" --only-binary=:all: --platform manylinux_2_28_aarch64 \
    --platform manylinux_2_27_aarch64 --platform manylinux_2_17_aarch64 --platform manylinux2014_aarch64 \
    --python-version 3.11 --implementation cp "${pins[@]}" 2>"$partial.log" \
    || { echo "arm root: pip could not install the aarch64 wheels of ${pins[*]} (log: $partial.log)" >&2; exit 1; }
PYTHONPATH="$site" PYTHONNOUSERSITE=1 qemu-aarch64-static -L "$partial" "$partial/usr/bin/python3.11" \
    -c "import numpy, yaml, PIL, ai_edge_litert.interpreter" 2>"$partial.log" \
    || { echo "arm root: the emulated python cannot import numpy, yaml, PIL and LiteRT (log: $partial.log)" >&2; exit 1; }
echo "$want" >"$partial/.mobileseg-arm-root"
rm -rf "$root" "$partial.log"
mv "$partial" "$root"
trap - EXIT
echo "arm64 root ready: $root ($((SECONDS - start)) s)"
