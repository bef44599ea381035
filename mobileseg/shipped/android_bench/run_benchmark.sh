#!/system/bin/sh
# mobileseg device-side benchmark runner: pushed to /data/local/tmp/mobileseg/ and run as
#   adb shell sh /data/local/tmp/mobileseg/run_benchmark.sh [MODE] [OPTIONS]
# Plain POSIX sh: Android's /system/bin/sh is mksh; the tests also run it under dash and bash.
#
# Modes (--detect and --check_binary may be combined; without either, a benchmark run):
#   --detect         print the CPU max frequencies and the big-core mask derived from them
#   --check_binary   check that --binary exists, is executable and matches the device ABI
#   (neither)        wait for the phone to cool, then run benchmark_model pinned to the big cores
#
# Options:
#   --binary PATH          benchmark_model on the device   (default /data/local/tmp/benchmark_model)
#   --graph FILE           the .tflite model on the device (required for a run)
#   --num_threads N        interpreter threads             (default 4)
#   --delegate D           xnnpack | gpu | nnapi | none    (default xnnpack)
#   --warmup_runs N        warm-up runs                    (default 5)
#   --num_runs N           measured runs                   (default 50)
#   --op_profile           add --enable_op_profiling=true
#   --cpu_mask HEX|auto|none  taskset mask; auto derives it from cpufreq (default auto)
#   --max_temp_c C         wait until every thermal zone is at or below C (default 45; 0 = no wait)
#   --cool_timeout_s S     give up waiting after S seconds and run anyway (default 180)
#   --cool_poll_s S        seconds between temperature reads (default 5)
#   --abilist LIST         ABIs the device runs, e.g. arm64-v8a,armeabi-v7a (default: getprop)
#
# Everything benchmark_model prints is passed through; the script adds lines starting with
# MOBILESEG_ that the host reads: MOBILESEG_CPU, MOBILESEG_MASK, MOBILESEG_BINARY,
# MOBILESEG_THERMAL, MOBILESEG_WARNING, MOBILESEG_ERROR, MOBILESEG_BEGIN and, last,
# MOBILESEG_EXIT <benchmark_model exit status> (>128 means killed by signal status-128).
# Exit status: 0 done, 2 usage error, 3 binary missing or not executable, 4 wrong ABI,
# otherwise that of benchmark_model.
#
# Test hook: MOBILESEG_SYSFS replaces /sys (cpufreq and thermal files are read below it).

SYSFS="${MOBILESEG_SYSFS:-/sys}"

detect=false
check=false
binary=/data/local/tmp/benchmark_model
graph=
threads=4
delegate=xnnpack
warmup_runs=5
num_runs=50
op_profile=false
cpu_mask=auto
max_temp_c=45
cool_timeout_s=180
cool_poll_s=5
abilist=

usage() {
  echo "MOBILESEG_ERROR usage $1"
  exit 2
}

need_value() {
  [ "$#" -ge 2 ] || usage "option $1 needs a value"
}

is_uint() {
  case "$1" in
    ''|*[!0-9]*) return 1 ;;
    *) return 0 ;;
  esac
}

while [ "$#" -gt 0 ]; do
  case "$1" in
    --detect) detect=true ;;
    --check_binary) check=true ;;
    --binary) need_value "$@"; binary="$2"; shift ;;
    --graph) need_value "$@"; graph="$2"; shift ;;
    --num_threads) need_value "$@"; threads="$2"; shift ;;
    --delegate) need_value "$@"; delegate="$2"; shift ;;
    --warmup_runs) need_value "$@"; warmup_runs="$2"; shift ;;
    --num_runs) need_value "$@"; num_runs="$2"; shift ;;
    --op_profile) op_profile=true ;;
    --cpu_mask) need_value "$@"; cpu_mask="$2"; shift ;;
    --max_temp_c) need_value "$@"; max_temp_c="$2"; shift ;;
    --cool_timeout_s) need_value "$@"; cool_timeout_s="$2"; shift ;;
    --cool_poll_s) need_value "$@"; cool_poll_s="$2"; shift ;;
    --abilist) need_value "$@"; abilist="$2"; shift ;;
    *) usage "unknown option $1" ;;
  esac
  shift
done

for pair in "num_threads=$threads" "warmup_runs=$warmup_runs" "num_runs=$num_runs" \
            "max_temp_c=$max_temp_c" "cool_timeout_s=$cool_timeout_s" "cool_poll_s=$cool_poll_s"; do
  is_uint "${pair#*=}" || usage "${pair%%=*} must be a whole number, got '${pair#*=}'"
done

# --- big cores ---------------------------------------------------------------------------
# The big cores are every core whose cpuinfo_max_freq is above the lowest one (the LITTLE
# cluster); on a phone whose cores all run at the same maximum, every core.
detect_mask() {
  min_freq=
  found=
  for f in "$SYSFS"/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do
    [ -r "$f" ] || continue
    freq=$(cat "$f" 2>/dev/null)
    is_uint "$freq" || continue
    dir=${f%/cpufreq/cpuinfo_max_freq}
    cpu=${dir##*/cpu}
    is_uint "$cpu" || continue
    echo "MOBILESEG_CPU cpu=$cpu max_freq_khz=$freq"
    found="$found $cpu:$freq"
    if [ -z "$min_freq" ] || [ "$freq" -lt "$min_freq" ]; then min_freq=$freq; fi
  done
  if [ -z "$found" ]; then
    echo "MOBILESEG_MASK none source=none"
    return
  fi
  all=0
  big=0
  for pair in $found; do
    cpu=${pair%%:*}
    freq=${pair#*:}
    all=$((all | (1 << cpu)))
    if [ "$freq" -gt "$min_freq" ]; then big=$((big | (1 << cpu))); fi
  done
  if [ "$big" -eq 0 ]; then big=$all; fi
  echo "MOBILESEG_MASK $(printf '%x' "$big") source=cpufreq"
}

# --- binary checks -------------------------------------------------------------------------
device_abis() {
  if [ -n "$abilist" ]; then
    echo "$abilist"
  elif command -v getprop >/dev/null 2>&1; then
    getprop ro.product.cpu.abilist
  fi
}

# ABI of an ELF file from its e_machine field (bytes 18-19), "" when not ELF.
elf_abi() {
  # shellcheck disable=SC2046
  set -- $(od -An -tx1 -N20 "$1" 2>/dev/null)
  [ "$#" -ge 20 ] || return 0
  [ "$1$2$3$4" = "7f454c46" ] || return 0
  case "${19}${20}" in
    b700) echo arm64-v8a ;;
    2800) echo armeabi-v7a ;;
    3e00) echo x86_64 ;;
    0300) echo x86 ;;
    *) echo "elf-machine-0x${20}${19}" ;;
  esac
}

check_binary() {
  if [ ! -e "$binary" ]; then
    echo "MOBILESEG_ERROR binary_missing path=$binary"
    exit 3
  fi
  if [ ! -x "$binary" ]; then
    chmod 755 "$binary" 2>/dev/null
  fi
  if [ ! -x "$binary" ]; then
    echo "MOBILESEG_ERROR binary_not_executable path=$binary"
    exit 3
  fi
  abis=$(device_abis)
  abi=$(elf_abi "$binary")
  if [ -n "$abi" ] && [ -n "$abis" ]; then
    case ",$abis," in
      *",$abi,"*) ;;
      *)
        echo "MOBILESEG_ERROR wrong_abi binary=$abi device=$abis"
        exit 4
        ;;
    esac
  fi
  echo "MOBILESEG_BINARY ok path=$binary abi=${abi:-unknown} device=${abis:-unknown}"
}

# --- thermal -------------------------------------------------------------------------------
# Hottest thermal zone in whole degrees C; zones report millidegrees (most) or degrees.
# Readings outside 1..149 C (disconnected sensors, -273, 255) are ignored.
max_temp() {
  hottest=
  for f in "$SYSFS"/class/thermal/thermal_zone*/temp; do
    [ -r "$f" ] || continue
    raw=$(cat "$f" 2>/dev/null)
    is_uint "$raw" || continue
    if [ "$raw" -ge 1000 ]; then t=$((raw / 1000)); else t=$raw; fi
    [ "$t" -ge 1 ] && [ "$t" -le 149 ] || continue
    if [ -z "$hottest" ] || [ "$t" -gt "$hottest" ]; then hottest=$t; fi
  done
  echo "$hottest"
}

wait_cool() {
  start=$(max_temp)
  now=$start
  waited=0
  if [ -z "$start" ]; then
    echo "MOBILESEG_THERMAL start_c=unknown end_c=unknown waited_s=0 limit_c=$max_temp_c"
    return
  fi
  if [ "$max_temp_c" -gt 0 ]; then
    while [ "$now" -gt "$max_temp_c" ] && [ "$waited" -lt "$cool_timeout_s" ]; do
      sleep "$cool_poll_s"
      waited=$((waited + cool_poll_s))
      now=$(max_temp)
      [ -n "$now" ] || now=0
    done
  fi
  echo "MOBILESEG_THERMAL start_c=$start end_c=$now waited_s=$waited limit_c=$max_temp_c"
  if [ "$max_temp_c" -gt 0 ] && [ "$now" -gt "$max_temp_c" ]; then
    echo "MOBILESEG_WARNING still ${now}C after ${waited}s (limit ${max_temp_c}C):" \
      "results may be throttled"
  fi
}

# --- modes ---------------------------------------------------------------------------------
if [ "$detect" = true ]; then
  detect_mask
fi
if [ "$detect" = true ] && [ "$check" = false ]; then
  exit 0
fi

check_binary
if [ "$check" = true ]; then
  exit 0
fi

[ -n "$graph" ] || usage "--graph is required"

case "$delegate" in
  xnnpack) delegate_flags="--use_xnnpack=true --use_gpu=false --use_nnapi=false" ;;
  gpu) delegate_flags="--use_gpu=true --use_xnnpack=false --use_nnapi=false" ;;
  nnapi) delegate_flags="--use_nnapi=true --use_xnnpack=false --use_gpu=false" ;;
  none) delegate_flags="--use_xnnpack=false --use_gpu=false --use_nnapi=false" ;;
  *) usage "--delegate must be xnnpack, gpu, nnapi or none, got '$delegate'" ;;
esac

if [ "$cpu_mask" = auto ]; then
  cpu_mask=$(detect_mask | sed -n 's/^MOBILESEG_MASK \([^ ]*\) .*/\1/p')
fi
[ "$cpu_mask" = none ] && cpu_mask=
case "$cpu_mask" in
  *[!0-9a-fA-F]*) usage "--cpu_mask must be hexadecimal, auto or none, got '$cpu_mask'" ;;
esac
if [ -n "$cpu_mask" ]; then
  if ! command -v taskset >/dev/null 2>&1; then
    echo "MOBILESEG_WARNING taskset not found: running without pinning to the big cores"
    cpu_mask=
  elif ! taskset "$cpu_mask" true >/dev/null 2>&1; then
    echo "MOBILESEG_WARNING taskset refused mask $cpu_mask (cores offline?): running unpinned"
    cpu_mask=
  fi
fi

wait_cool

# The graph path may hold spaces: keep it one argument by building "$@".
# shellcheck disable=SC2086
set -- "--graph=$graph" "--num_threads=$threads" "--warmup_runs=$warmup_runs" \
  "--num_runs=$num_runs" $delegate_flags "--enable_op_profiling=$op_profile" \
  "--report_peak_memory_footprint=true"

echo "MOBILESEG_BEGIN graph=$graph threads=$threads delegate=$delegate mask=${cpu_mask:-none}"
if [ -n "$cpu_mask" ]; then
  taskset "$cpu_mask" "$binary" "$@" 2>&1
  status=$?
else
  "$binary" "$@" 2>&1
  status=$?
fi
echo "MOBILESEG_EXIT $status"
exit "$status"
