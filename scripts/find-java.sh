# shellcheck shell=sh disable=SC2034  # krun_java, krun_java_home, krun_java_version: for the caller
# Finds the Java (25 or newer) krun runs on. Sourced by ./krun, run-tests and scripts/host-setup.sh;
# `krun assemble` copies it into the script of an assembled distribution. Plain POSIX sh that needs no
# command but the shell's own (and readlink to follow symlinks), so that it works where the PATH holds
# nothing but java.
#
# krun_find_java sets krun_java (the java command), krun_java_home and krun_java_version from the first
# of these that is Java 25 or newer:
#   1. $KRUN_JAVA_HOME, 2. $JAVA_HOME: given explicitly, so anything else there is an error;
#   3. java on the PATH, 4. the usual install folders (krun_java_places; tests replace them with
#      $KRUN_JAVA_SEARCH_PATH, ':'-separated glob patterns): skipped silently when older.
# Otherwise it prints one line on stderr and returns 1.

krun_java_needed=25

# Folders where JDKs are usually installed, as ':'-separated glob patterns, in the order they are tried.
krun_java_places="/usr/lib/jvm/*:/usr/java/*:/opt/java/*:/opt/jdk*:${HOME:-/nonexistent}/.sdkman/candidates/java/*"
krun_java_places="$krun_java_places:${HOME:-/nonexistent}/.jdks/*:${HOME:-/nonexistent}/.asdf/installs/java/*"
krun_java_places="$krun_java_places:/Library/Java/JavaVirtualMachines/*/Contents/Home"
krun_java_places="$krun_java_places:${HOME:-/nonexistent}/Library/Java/JavaVirtualMachines/*/Contents/Home"
krun_java_places="$krun_java_places:/opt/homebrew/opt/openjdk*/libexec/openjdk.jdk/Contents/Home"
krun_java_places="$krun_java_places:/usr/local/opt/openjdk*/libexec/openjdk.jdk/Contents/Home"

# Sets krun_path to $1 with symlinks followed until it names no symlink (relative links resolved
# against the link's folder). Without readlink (or in a loop of links) it says so and returns 1.
krun_follow_links() {
    krun_path=$1
    _krun_hops=0
    while [ -L "$krun_path" ]; do
        _krun_hops=$((_krun_hops + 1))
        if [ "$_krun_hops" -gt 40 ] || ! _krun_link=$(readlink "$krun_path" 2>/dev/null) || [ -z "$_krun_link" ]; then
            echo "krun: cannot follow the symlink $krun_path (a loop of links, or no readlink command)" >&2
            return 1
        fi
        case $_krun_link in
            /*) krun_path=$_krun_link ;;
            *) case $krun_path in */*) krun_path=${krun_path%/*}/$_krun_link ;; *) krun_path=$_krun_link ;; esac ;;
        esac
    done
}

# Sets krun_java_major to the feature release of version string $1: "25" and "25.0.1" give 25,
# "26-ea" 26, "25+36" 25, "1.8.0_392" 8; empty when $1 does not start with a number.
krun_java_major_of() {
    _krun_v=$1
    case $_krun_v in 1.*) _krun_v=${_krun_v#1.} ;; esac
    krun_java_major=${_krun_v%%[!0-9]*}
}

# Sets krun_java_version (and krun_java_major) for java command $2 of home folder $1 (empty: unknown):
# from the home's release file (JAVA_VERSION="25.0.1") when it has one, else from `java -version`
# (openjdk version "25.0.1" 2025-10-21). Empty when neither tells.
_krun_java_version_of() {
    krun_java_version=
    if [ -n "$1" ] && [ -f "$1/release" ]; then
        while IFS= read -r _krun_line || [ -n "$_krun_line" ]; do
            case $_krun_line in
                JAVA_VERSION=*) krun_java_version=${_krun_line#JAVA_VERSION=}; break ;;
            esac
        done <"$1/release"
        krun_java_version=${krun_java_version#\"}
        krun_java_version=${krun_java_version%\"}
    fi
    if [ -z "$krun_java_version" ]; then
        _krun_banner=$("$2" -version 2>&1 </dev/null) || _krun_banner=
        case $_krun_banner in
            *'version "'*)
                krun_java_version=${_krun_banner#*version \"}
                krun_java_version=${krun_java_version%%\"*} ;;
        esac
    fi
    krun_java_major_of "$krun_java_version"
}

# Whether $1 is a home folder with an executable bin/java.
_krun_java_present() {
    [ -f "$1/bin/java" ] && [ -x "$1/bin/java" ]
}

# Whether the Java in home $1 (java command $2) is new enough; sets krun_java_version either way.
_krun_java_recent() {
    _krun_java_version_of "$1" "$2"
    [ -n "$krun_java_major" ] && [ "$krun_java_major" -ge "$krun_java_needed" ]
}

# Takes the home folder named by variable $1 (value $2), or says in one line why not and returns 1.
_krun_java_given() {
    if ! _krun_java_present "$2"; then
        echo "krun: $1=$2 is not a JDK (no bin/java in it); krun needs Java $krun_java_needed or newer" >&2
        return 1
    fi
    if ! _krun_java_recent "$2" "$2/bin/java"; then
        if [ -z "$krun_java_version" ]; then
            echo "krun: $1=$2: cannot tell the version of $2/bin/java; krun needs Java $krun_java_needed or newer" >&2
        else
            echo "krun: $1=$2 is Java $krun_java_version; krun needs Java $krun_java_needed or newer" >&2
        fi
        return 1
    fi
    krun_java_home=$2
    krun_java=$2/bin/java
}

# Prints VERSION:HOME for the first folder matching the ':'-separated glob patterns $1 that holds
# Java 25 or newer. In a subshell of its own: it splits on ':' without touching the caller's IFS.
_krun_java_search() (
    IFS=:
    for _krun_pattern in $1; do
        for _krun_home in $_krun_pattern; do
            if _krun_java_present "$_krun_home" && _krun_java_recent "$_krun_home" "$_krun_home/bin/java"; then
                printf '%s:%s\n' "$krun_java_version" "$_krun_home"
                exit 0
            fi
        done
    done
    exit 1
)

krun_find_java() {
    krun_java='' krun_java_home='' krun_java_version=''
    if [ -n "${KRUN_JAVA_HOME:-}" ]; then
        _krun_java_given KRUN_JAVA_HOME "$KRUN_JAVA_HOME"
        return
    fi
    if [ -n "${JAVA_HOME:-}" ]; then
        _krun_java_given JAVA_HOME "$JAVA_HOME"
        return
    fi

    # java on the PATH, usually a link (/usr/bin/java -> /etc/alternatives/java -> .../bin/java): its
    # home is two folders up from where the links end.
    _krun_path_version=
    if _krun_on_path=$(command -v java 2>/dev/null) && [ -n "$_krun_on_path" ]; then
        krun_follow_links "$_krun_on_path" 2>/dev/null || krun_path=$_krun_on_path
        _krun_home=${krun_path%/*}
        _krun_home=${_krun_home%/*}
        if _krun_java_present "$_krun_home"; then
            _krun_java=$_krun_home/bin/java
        else
            _krun_java=$krun_path _krun_home=''
        fi
        if _krun_java_recent "$_krun_home" "$_krun_java"; then
            krun_java_home=$_krun_home
            krun_java=$_krun_java
            return 0
        fi
        _krun_path_version=${krun_java_version:-unknown}
    fi

    if _krun_found=$(_krun_java_search "${KRUN_JAVA_SEARCH_PATH:-$krun_java_places}"); then
        krun_java_version=${_krun_found%%:*}
        krun_java_home=${_krun_found#*:}
        krun_java=$krun_java_home/bin/java
        return 0
    fi
    if [ -n "$_krun_path_version" ]; then
        _krun_path_version=" (java there is $_krun_path_version)"
    fi
    echo "krun: no Java $krun_java_needed or newer on the PATH$_krun_path_version or in the usual install folders; install JDK $krun_java_needed or set KRUN_JAVA_HOME to its folder" >&2
    return 1
}
