#!/usr/bin/env bash
# Builds krun's default guest root filesystem from Debian's busybox-static: a directory with
# /bin/busybox, a link per applet, and the few files a shell expects (/etc/passwd, /etc/group, ...).
# Cached outside the repository: $KRUN_CACHE/rootfs/busybox-<version>, with a stable link
# $KRUN_CACHE/rootfs/default. Prints the directory on its last line of stdout.
set -euo pipefail

cache="${KRUN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/krun}"
busybox=/bin/busybox
if [[ ! -x "$busybox" ]] || ! file -L "$busybox" 2>/dev/null | grep -q "statically linked"; then
    busybox=/usr/bin/busybox
fi
if [[ ! -x "$busybox" ]] || ! dpkg-query -W busybox-static >/dev/null 2>&1; then
    echo "krun: the default rootfs needs Debian's busybox-static (apt-get install busybox-static)" >&2
    exit 1
fi
version="$(dpkg-query -W -f='${Version}' busybox-static | tr ':~' '__')"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
. "$here/../../scripts/krun-cache.sh"
key="busybox-$version-$(sha256sum "$here/build.sh" | cut -c1-8)"
out="$cache/rootfs/$key"
# krun shares this tree read-only under a writable layer of the guest's own; what an older krun (or a
# hand) changed in it would show in every later run. The manifest beside it says what it must hold.
pristine() {
    [[ -x "$out/bin/busybox" && -f "$out.manifest" ]] \
        && [[ "$(cd "$out" && find . -printf '%p %y %m %s\n' | LC_ALL=C sort)" == "$(cat "$out.manifest")" ]]
}
if pristine; then
    krun_cache_link "$cache/rootfs/default" "$key"
    echo "$out"
    exit 0
fi

krun_cache_dir "$cache/rootfs" "build the default root filesystem" || exit 1
exec 9>"$cache/rootfs/.build.lock"
flock 9
if pristine; then
    krun_cache_link "$cache/rootfs/default" "$key"
    echo "$out"
    exit 0
fi
if [[ -d "$out" ]]; then
    echo "[rootfs] $out was changed since it was built: building it again" >&2
fi
echo "[rootfs] building the default root filesystem from busybox-static $version" >&2
tmp="$out.tmp.$$"
rm -rf "$tmp"
mkdir -p "$tmp"/{bin,sbin,usr/bin,usr/sbin,etc,root,tmp,proc,sys,dev,home,var/tmp,run}
chmod 1777 "$tmp/tmp" "$tmp/var/tmp"
chmod 700 "$tmp/root"
cp "$busybox" "$tmp/bin/busybox"
chmod 755 "$tmp/bin/busybox"
# One relative link per applet, where busybox installs it (bin, sbin, usr/bin, usr/sbin).
"$tmp/bin/busybox" --list-full | while read -r applet; do
    [[ "$applet" == "bin/busybox" || -e "$tmp/$applet" ]] && continue
    ln -sr "$tmp/bin/busybox" "$tmp/$applet"
done
cat > "$tmp/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
PASSWD
cat > "$tmp/etc/group" <<'GROUP'
root:x:0:
tty:x:5:
nogroup:x:65534:
GROUP
echo "krun" > "$tmp/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' > "$tmp/etc/hosts"
printf 'PS1='"'"'\\h:\\w\\$ '"'"'\nexport PS1\n' > "$tmp/etc/profile"
(cd "$tmp" && find . -printf '%p %y %m %s\n' | LC_ALL=C sort) > "$out.manifest.tmp"
rm -rf "$out"
mv "$tmp" "$out"
mv -f "$out.manifest.tmp" "$out.manifest"
krun_cache_link "$cache/rootfs/default" "$key"
echo "[rootfs] $(find "$out" | wc -l) entries in $out" >&2
echo "$out"
