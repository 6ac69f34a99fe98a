#!/usr/bin/env python3
"""TCP and UDP echo servers on the host's 127.0.0.1 for TSI tests (a test fixture, not part of krun).

    echo_servers.py TCP_PORT UDP_PORT

A TCP connection gets back what it sends; when the client ends its side, the server ends its own after
the last echo. Each UDP datagram goes back to its sender.
"""
import socket
import sys
import threading


def tcp_client(c):
    try:
        while True:
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
    threading.Thread(target=udp, args=(int(sys.argv[2]),), daemon=True).start()
    tcp(int(sys.argv[1]))
