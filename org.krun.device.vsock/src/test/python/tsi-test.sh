#!/usr/bin/env bash
# Runs tsitest (src/test/guest/tsitest.c) in a guest whose TSI goes to tsi_peer.py, this folder's test TSI
# server, through a vsock port map, with TCP and UDP echo servers on the host's loopback. A fixture for
# developing the guest kernel's TSI and for comparing with krun's own TSI proxy; not part of krun.
#
#   tsi-test.sh [-k KERNEL] [-x KRUN] [-- TSITEST_ARGS...]
#
# KERNEL: a vmlinux with the TSI patch (default: krun's own); KRUN: the krun command (default: this
# checkout's ./krun). Without TSITEST_ARGS tsitest gets every host check. Prints tsitest's lines, then
# the server's request counts; exits with tsitest's status.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../../.." && pwd)"
kernel=()
krun="$repo/krun"
while getopts "k:x:" o; do
    case $o in
        k) kernel=(--kernel "$OPTARG") ;;
        x) krun="$OPTARG" ;;
        *) exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[[ "${1:-}" == "--" ]] && shift

work="$(mktemp -d "${TMPDIR:-/tmp}/tsi-test.XXXXXX")"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

make -s -C "$here/../guest" tsitest TSITEST="$work/bin/tsitest" >&2
# Free ports on the host's loopback: TCP echo, UDP echo, one nobody listens on, one to publish, one the echo
# servers hold (published too, so the guest's listen and bind there fail), and one whose connects the TSI
# server answers slowly.
read -r tcp udp closed pub held slow < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(6)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
tsi_port=70000 stats_port=70001 guest_port=8080 taken_port=8081

python3 "$here/echo_servers.py" "$tcp" "$udp" "$held" & pids+=($!)
python3 "$here/tsi_peer.py" "$work/tsi.sock" -p "$pub:$guest_port" -p "$pub:$guest_port/udp" \
    -p "$held:$taken_port" -p "$held:$taken_port/udp" \
    --slow-port "$slow" \
    --stats "$work/stats.json" --stats-socket "$work/stats.sock" ${TSI_PEER_VERBOSE:+-v} & pids+=($!)
for _ in $(seq 50); do [[ -S "$work/tsi.sock" && -S "$work/stats.sock" ]] && break; sleep 0.1; done

args=("$@")
if [[ ${#args[@]} == 0 ]]; then
    args=(-t "$tcp" -u "$udp" -c "$closed" -p "$guest_port:$pub" -e "$taken_port" -w "$slow" -s "$stats_port")
fi
status=0
"$krun" run --timeout 900 ${TSI_KERNEL_LOG:+--kernel-log} "${kernel[@]}" -v "$work/bin:/tsi" \
    --vsock "$tsi_port:$work/tsi.sock" --vsock "$stats_port:$work/stats.sock" \
    --kernel-arg "krun_tsi=inet,port=$tsi_port" -- /tsi/tsitest "${args[@]}" || status=$?
echo "tsi_peer requests: $(cat "$work/stats.json")"
exit $status
