#!/usr/bin/env python3
"""A TSI server for tests: the VMM's side of TSI.md, on a host unix socket.

Not part of krun: a reference to develop and check the guest kernel's side against, and to compare
with the Java proxy. krun ties a guest vsock port to the socket with a port map, and the guest kernel is
told that port (its own TSI port is krun's alone):

    tsi_peer.py /tmp/tsi.sock -p 18080:8080 -p 15353:5353/udp --stats /tmp/tsi.json &
    krun run --vsock 70000:/tmp/tsi.sock --kernel-arg krun_tsi=inet,port=70000 -- CMD

Each connection to the socket is one TSI exchange (request, response, then a byte pipe, datagram frames
or incoming records). One thread per direction; it is a test fixture, not a server to trust.
--stats FILE keeps a JSON count of the requests by op (rewritten after each), and --stats-socket PATH
answers each connection with it (a guest reads it through another port map), so a test can tell that
guest-local traffic never reached the server.
"""
import argparse
import ctypes
import errno
import ipaddress
import json
import os
import socket
import struct
import sys
import threading
import time

VERSION = 1
OPS = {1: "CONNECT", 2: "DGRAM", 3: "LISTEN", 4: "ACCEPT"}
FLAG_BIND = 1
DATA, SETPEER, ERROR = 0, 1, 2
AF = {socket.AF_INET: 4, socket.AF_INET6: 16}

REQ = struct.Struct("<BBHHHII")     # version op family port addrlen id flags
HEAD = struct.Struct("<iHHHH")      # status family port addrlen reserved (response)
FRAME = struct.Struct("<HBBHHHH")   # len kind reserved family port addrlen reserved
RECORD = struct.Struct("<IHHHH")    # id family port addrlen reserved

lock = threading.Lock()
stats = {"requests": 0, "CONNECT": 0, "DGRAM": 0, "LISTEN": 0, "ACCEPT": 0, "bad": 0}
pending = {}                        # incoming record id -> (host socket, time)
next_id = [1]
args = None


def log(*a):
    if args.verbose:
        print("[tsi_peer]", *a, file=sys.stderr, flush=True)


def count(key):
    with lock:
        stats[key] += 1
        save()


def save():
    if args.stats:
        tmp = args.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(stats, f)
        os.replace(tmp, args.stats)


def serve_stats(path):
    """Each connection to path gets the counts as one JSON line (a guest reads them over a vsock port map)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(16)
    while True:
        c, _ = srv.accept()
        with lock:
            line = json.dumps(stats) + "\n"
        try:
            c.sendall(line.encode())
        except OSError:
            pass
        c.close()


def recv_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


# ---- addresses: the guest's view and the host's ----

def to_host(family, raw, port):
    """A guest destination as a host address: 192.0.2.N is the host's 127.0.0.N, 2001:db8::1 its ::1."""
    if family == socket.AF_INET:
        a = ipaddress.IPv4Address(raw)
        if a in ipaddress.ip_network("192.0.2.0/24"):
            a = ipaddress.IPv4Address("127.0.0.%d" % raw[3])
        return socket.AF_INET, (str(a), port)
    if family == socket.AF_INET6:
        a = ipaddress.IPv6Address(raw)
        if a == ipaddress.IPv6Address("2001:db8::1"):
            a = ipaddress.IPv6Address("::1")
        return socket.AF_INET6, (str(a), port, 0, 0)
    if family == socket.AF_UNIX:
        return socket.AF_UNIX, raw.decode(errors="surrogateescape")
    raise OSError(errno.EAFNOSUPPORT, "family %d" % family)


def to_guest(sa):
    """A host socket address as the guest sees it: (family, port, raw bytes)."""
    if isinstance(sa, str) or sa is None:
        return socket.AF_UNIX, 0, b""
    host, port = sa[0], sa[1]
    a = ipaddress.ip_address(host.split("%")[0])
    if a.version == 6 and a.ipv4_mapped:
        a = a.ipv4_mapped
    if a.version == 4:
        if a in ipaddress.ip_network("127.0.0.0/24"):
            a = ipaddress.IPv4Address("192.0.2.%d" % a.packed[3])
        return socket.AF_INET, port, a.packed
    if a == ipaddress.IPv6Address("::1"):
        a = ipaddress.IPv6Address("2001:db8::1")
    return socket.AF_INET6, port, a.packed


def respond(conn, status, sa=None):
    family, port, raw = to_guest(sa) if sa is not None else (0, 0, b"")
    conn.sendall(HEAD.pack(status, family, port, len(raw), 0) + raw)


# ---- byte pipes (CONNECT, ACCEPT) ----

def pump(src, dst, done):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                break
            dst.sendall(data)
    except OSError as e:
        log("pipe:", e)
        for s in (src, dst):    # a reset ends both
            try:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    done.release()


def pipe(conn, host):
    done = threading.Semaphore(0)
    threading.Thread(target=pump, args=(conn, host, done), daemon=True).start()
    threading.Thread(target=pump, args=(host, conn, done), daemon=True).start()
    done.acquire()
    done.acquire()
    host.close()
    conn.close()


def op_connect(conn, family, port, raw):
    if port in args.slow_port:  # a destination that takes its time, then refuses
        time.sleep(20)
        respond(conn, errno.ECONNREFUSED)
        return
    hfam, addr = to_host(family, raw, port)
    host = socket.socket(hfam, socket.SOCK_STREAM)
    host.settimeout(30)
    try:
        host.connect(addr)
    except socket.timeout:
        respond(conn, errno.ETIMEDOUT)
        return
    except OSError as e:
        respond(conn, e.errno or errno.ECONNREFUSED)
        return
    host.settimeout(None)
    respond(conn, 0, host.getsockname() if hfam != socket.AF_UNIX else None)
    pipe(conn, host)


def op_accept(conn, id_):
    with lock:
        entry = pending.pop(id_, None)
    if entry is None:
        respond(conn, errno.ECONNABORTED)
        return
    host = entry[0]
    respond(conn, 0, host.getsockname())
    pipe(conn, host)


# ---- published listeners (LISTEN) ----

def published(port, proto):
    for spec in args.publish:
        hp, rest = spec.split(":")
        gp, _, p = rest.partition("/")
        if int(gp) == port and (p or "tcp") == proto:
            return int(hp)
    return 0


def op_listen(conn, family, port):
    hport = published(port, "tcp")
    if not hport:
        respond(conn, 0)        # port 0: in-guest listening only; then close
        return
    lst = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        lst.bind(("127.0.0.1", hport))
        lst.listen(128)
    except OSError as e:
        lst.close()
        respond(conn, e.errno)
        return
    family_, _, raw = to_guest(lst.getsockname())
    conn.sendall(HEAD.pack(0, family_, hport, len(raw), 0) + raw)
    log("listening on host port", hport, "for guest port", port)
    send_lock = threading.Lock()

    def acceptor():
        while True:
            try:
                host, peer = lst.accept()
            except OSError:
                return
            with lock:
                id_ = next_id[0]
                next_id[0] += 1
                pending[id_] = (host, time.monotonic())
            pfam, pport, praw = to_guest(peer)
            try:
                with send_lock:
                    conn.sendall(RECORD.pack(id_, pfam, pport, len(praw), 0) + praw)
            except OSError:
                host.close()
                return

    threading.Thread(target=acceptor, daemon=True).start()
    try:        # the guest closing this connection closes the host listener
        while conn.recv(4096):
            pass
    except OSError:
        pass
    lst.close()
    conn.close()


# ---- datagrams (DGRAM) ----

libc = ctypes.CDLL(None, use_errno=True)


def dissolve(s):
    """connect(AF_UNSPEC): a UDP socket forgets its peer."""
    sa = struct.pack("H14x", socket.AF_UNSPEC)
    libc.connect(s.fileno(), sa, len(sa))


def op_dgram(conn, family, port, raw, flags):
    s = socket.socket(family, socket.SOCK_DGRAM)
    if flags & FLAG_BIND:
        hport = published(port, "udp")
        if hport:
            try:
                s.bind(("127.0.0.1", hport) if family == socket.AF_INET else ("::1", hport))
            except OSError as e:
                s.close()
                respond(conn, e.errno)
                return
    respond(conn, 0, s.getsockname())
    send_lock = threading.Lock()
    closed = [False]

    def host_to_guest():
        while not closed[0]:
            try:
                data, sa = s.recvfrom(65535)
                fam, p, a = to_guest(sa)
                frame = FRAME.pack(len(data), DATA, 0, fam, p, len(a), 0) + a + data
            except OSError as e:
                if closed[0]:
                    return
                frame = FRAME.pack(0, ERROR, 0, 0, e.errno or errno.EIO, 0, 0)
            try:
                with send_lock:
                    conn.sendall(frame)
            except OSError:
                return

    threading.Thread(target=host_to_guest, daemon=True).start()
    try:
        while True:
            try:
                head = recv_exact(conn, FRAME.size)
            except EOFError:
                break
            length, kind, _, fam, p, alen, _ = FRAME.unpack(head)
            a = recv_exact(conn, alen) if alen else b""
            data = recv_exact(conn, length) if length else b""
            try:
                if kind == SETPEER:
                    if alen:
                        hfam, addr = to_host(fam, a, p)
                        s.connect(_v4mapped(s, hfam, addr))
                    else:
                        dissolve(s)
                elif kind == DATA:
                    if alen:
                        hfam, addr = to_host(fam, a, p)
                        s.sendto(data, _v4mapped(s, hfam, addr))
                    else:
                        s.send(data)
            except OSError as e:
                with send_lock:
                    conn.sendall(FRAME.pack(0, ERROR, 0, 0, e.errno or errno.EIO, 0, 0))
    except OSError as e:
        log("dgram:", e)
    closed[0] = True
    s.close()
    conn.close()


def _v4mapped(s, hfam, addr):
    if s.family == socket.AF_INET6 and hfam == socket.AF_INET:
        return ("::ffff:" + addr[0], addr[1], 0, 0)
    return addr


# ---- one TSI connection ----

def serve(conn):
    try:
        conn.settimeout(10)
        version, op, family, port, alen, id_, flags = REQ.unpack(recv_exact(conn, REQ.size))
        if version != VERSION or op not in OPS or alen > 108 or \
                family not in (socket.AF_INET, socket.AF_INET6, socket.AF_UNIX):
            raise ValueError("bad request %r" % ((version, op, family, alen),))
        raw = recv_exact(conn, alen) if alen else b""
        conn.settimeout(None)
    except (EOFError, OSError, ValueError, struct.error) as e:
        log("bad request:", e)
        count("bad")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
        return
    count("requests")
    count(OPS[op])
    log(OPS[op], "family", family, "port", port, "addr", raw.hex() if family != socket.AF_UNIX else raw, "id", id_,
        "flags", flags)
    try:
        if op == 1:
            op_connect(conn, family, port, raw)
        elif op == 2:
            op_dgram(conn, family, port, raw, flags)
        elif op == 3:
            op_listen(conn, family, port)
        else:
            op_accept(conn, id_)
    except OSError as e:
        log(OPS[op], "failed:", e)
    finally:
        try:
            conn.close()
        except OSError:
            pass


def reaper():
    while True:
        time.sleep(5)
        now = time.monotonic()
        with lock:
            for id_, (s, t) in list(pending.items()):
                if now - t > 30:
                    s.close()
                    del pending[id_]


def main():
    global args
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("socket", help="the unix socket to listen on")
    ap.add_argument("-p", "--publish", action="append", default=[], metavar="HOST:GUEST[/udp]")
    ap.add_argument("--stats", help="a JSON file with the request counts")
    ap.add_argument("--stats-socket", help="a unix socket answering each connection with the counts")
    ap.add_argument("--slow-port", type=int, action="append", default=[],
                    help="CONNECT to this port is answered ECONNREFUSED after 20 s")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()
    try:
        os.unlink(args.socket)
    except FileNotFoundError:
        pass
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(args.socket)
    srv.listen(128)
    save()
    threading.Thread(target=reaper, daemon=True).start()
    if args.stats_socket:
        threading.Thread(target=serve_stats, args=(args.stats_socket,), daemon=True).start()
    print("[tsi_peer] listening on", args.socket, file=sys.stderr, flush=True)
    try:
        while True:
            conn, _ = srv.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
