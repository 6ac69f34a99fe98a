# Sourced by ./krun and the guest build scripts: writing into krun's cache, which may be read-only (a shared
# install, a read-only HOME). What is already complete there is used as it is; what must be written and cannot
# is said in one line.

# krun_cache_dir DIR WHAT: makes DIR writable for WHAT (its parents too), or says why not and returns 1.
krun_cache_dir() {
    local dir="$1" what="$2" err probe="$1/.krun-write-test.$$"
    if ! err="$( { mkdir -p "$dir" && : > "$probe" && rm -f "$probe"; } 2>&1 )"; then
        echo "krun: cannot $what: $dir cannot be written (${err##*: }); set KRUN_CACHE to a writable folder" >&2
        return 1
    fi
}

# krun_cache_link LINK TARGET: points LINK at TARGET unless it already does; a cache that cannot be written
# keeps its link (the link is a convenience: krun itself uses the folder the build script prints).
krun_cache_link() {
    [[ "$(readlink "$1" 2>/dev/null)" == "$2" ]] || ln -sfn "$2" "$1" 2>/dev/null || true
}
