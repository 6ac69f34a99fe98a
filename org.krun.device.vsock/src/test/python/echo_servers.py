#!/usr/bin/env python3
"""TCP and UDP echo servers on the host's 127.0.0.1 for TSI tests (a test fixture, not part of krun).

    echo_servers.py TCP_PORT UDP_PORT [HELD_PORT]

A TCP connection gets back what it sends; when the client ends its side, the server ends its own after
the last echo. Except a connection whose first byte is W: the server counts what follows until the end
(a client that writes and closes at once: did it all arrive?), and one whose first byte is Q gets that
count back as text. Each UDP datagram goes back to its sender. HELD_PORT is only held (TCP listening, UDP bound), so that
nobody else can take it.
"""
import socket
import sys
import threading


last_count = [-1]


def tcp_client(c):
    try:
        first = c.recv(1)
        if first == b"W":
            n = 0
            while True:
                data = c.recv(65536)
                if not data:
                    break
                n += len(data)
            last_count[0] = n
            c.close()
            return
        if first == b"Q":
            c.sendall(str(last_count[0]).encode())
            c.close()
            return
        if first:
            c.sendall(first)
        while first:
            data = c.recv(65536)
            if not data:
                break
            c.sendall(data)
        c.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    c.close()


def tcp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(256)
    while True:
        c, _ = s.accept()
        threading.Thread(target=tcp_client, args=(c,), daemon=True).start()


def udp(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", port))
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(data, peer)


if __name__ == "__main__":
    if len(sys.argv) > 3:
        held = [socket.socket(socket.AF_INET, socket.SOCK_STREAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)]
        for h in held:
            h.bind(("127.0.0.1", int(sys.argv[3])))
        held[0].listen(1)
    threading.Thread(target=udp, args=(int(sys.argv[2]),), daemon=True).start()
    tcp(int(sys.argv[1]))
