#!/usr/bin/env bash
# Builds krun's guest kernel (our libkrunfw) from Debian's linux-source-6.12:
# `make tinyconfig`, then config.fragment, then the patches in patches/.
#
# The result is cached outside the repository, keyed by the source package
# version, the fragment, the patches and this script:
#   $KRUN_CACHE/kernel/<key>/{vmlinux,bzImage,config}
# and a stable link $KRUN_CACHE/kernel/current -> <key>.
# Prints the directory holding the kernel on its last line of stdout.
#
# Usage: guest/kernel/build.sh [--print-key]
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../scripts/krun-cache.sh"
cache="${KRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/krun}"
src_tar=/usr/src/linux-source-6.12.tar.xz
jobs="${KRUN_KERNEL_JOBS:-$(nproc)}"

log() { printf '[kernel] %s\n' "$*" >&2; }

if [[ ! -r "$src_tar" ]]; then
    echo "krun: kernel source $src_tar is missing; install it with: apt-get install linux-source-6.12" >&2
    exit 1
fi

src_version="$(dpkg-query -W -f='${Version}' linux-source-6.12 2>/dev/null || stat -c %s "$src_tar")"
key="$( { echo "$src_version"; cat "$here/config.fragment" "$here"/patches/*.patch "$here/build.sh"; } | sha256sum | cut -c1-16)"
if [[ "${1:-}" == "--print-key" ]]; then echo "$key"; exit 0; fi

out="$cache/kernel/$key"
if [[ -f "$out/vmlinux" && -f "$out/bzImage" ]]; then
    krun_cache_link "$cache/kernel/current" "$key"
    echo "$out"
    exit 0
fi

# One build at a time: a second krun started meanwhile waits here, then finds the result.
krun_cache_dir "$cache/kernel" "build the guest kernel" || exit 1
exec 9>"$cache/kernel/.build.lock"
if ! flock -n 9; then
    log "another krun is building the guest kernel; waiting for it"
    flock 9
fi
if [[ -f "$out/vmlinux" && -f "$out/bzImage" ]]; then
    krun_cache_link "$cache/kernel/current" "$key"
    echo "$out"
    exit 0
fi

for tool in make gcc bc bison flex perl xz lz4; do
    command -v "$tool" >/dev/null || { echo "krun: kernel build needs '$tool' (apt-get install build-essential bc bison flex libelf-dev libssl-dev xz-utils lz4)" >&2; exit 1; }
done

rm -rf "$cache/kernel/build-$key".*   # left by a build that was killed
work="$(mktemp -d "$cache/kernel/build-$key.XXXXXX")"
trap 'rm -rf "$work"' EXIT

log "building guest kernel $key from linux-source-6.12 $src_version (about 10 minutes on 2 cores)"
log "unpacking source"
tar -C "$work" -xJf "$src_tar"
ksrc="$work/linux-source-6.12"

for p in "$here"/patches/*.patch; do
    log "applying $(basename "$p")"
    patch -s -d "$ksrc" -p1 < "$p"
done

log "configuring (tinyconfig + config.fragment)"
make -s -C "$ksrc" tinyconfig >/dev/null
"$ksrc/scripts/kconfig/merge_config.sh" -m -O "$ksrc" "$ksrc/.config" "$here/config.fragment" >/dev/null
make -s -C "$ksrc" olddefconfig >/dev/null

# Every option the fragment asks for must have survived olddefconfig:
# a renamed or unmet option would otherwise silently vanish.
missing=0
while IFS= read -r line; do
    [[ "$line" =~ ^CONFIG_([A-Za-z0-9_]+)=(.*)$ ]] || continue
    name="${BASH_REMATCH[1]}"; want="${BASH_REMATCH[2]}"
    if [[ "$want" == "n" ]]; then
        if grep -q "^CONFIG_${name}=[ym]" "$ksrc/.config"; then log "option CONFIG_$name is still enabled"; missing=1; fi
    elif ! grep -qx "CONFIG_${name}=${want}" "$ksrc/.config"; then
        log "option CONFIG_$name=$want did not take"; missing=1
    fi
done < "$here/config.fragment"
if [[ $missing != 0 ]]; then echo "krun: kernel configuration does not match config.fragment" >&2; exit 1; fi

log "compiling with $jobs jobs"
start=$(date +%s)
# Progress: one line every 200 compiled objects, plus the elapsed time.
make -C "$ksrc" -j"$jobs" vmlinux bzImage 2>&1 | tee "$work/build.log" | awk -v start="$start" '
    /^  CC / { n++; if (n % 200 == 0) { "date +%s" | getline now; close("date +%s"); printf "[kernel] %d objects compiled, %ds\n", n, now - start > "/dev/stderr" } }
    /error:|Error [0-9]/ { print > "/dev/stderr" }'
if [[ ${PIPESTATUS[0]} != 0 ]]; then
    echo "krun: kernel build failed; last lines of the log:" >&2
    tail -n 30 "$work/build.log" >&2
    exit 1
fi

mkdir -p "$out.tmp"
cp "$ksrc/vmlinux" "$out.tmp/vmlinux"
cp "$ksrc/arch/x86/boot/bzImage" "$out.tmp/bzImage"
cp "$ksrc/.config" "$out.tmp/config"
rm -rf "$out"
mv "$out.tmp" "$out"
krun_cache_link "$cache/kernel/current" "$key"
log "done in $(( $(date +%s) - start ))s: $(du -h "$out/vmlinux" | cut -f1) vmlinux, $(du -h "$out/bzImage" | cut -f1) bzImage"
echo "$out"
