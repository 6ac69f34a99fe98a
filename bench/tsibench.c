/*
 * tsibench: the guest side of bench/net. TCP to servers of NetBench.java on the host's loopback, reached
 * through transparent socket impersonation as host.krun.internal (192.0.2.1, the default HOST_ADDR) or
 * through a network card (passt's gateway address, 10.0.2.2, maps to the host's loopback):
 *
 *   tsibench SINK_PORT SOURCE_PORT CLOSE_PORT BYTES CONNECTIONS [HOST_ADDR]
 *
 *   upload:   writes BYTES to SINK_PORT, ends its side, waits for the server's close
 *   download: reads SOURCE_PORT to its end (the server sends BYTES and closes)
 *   connect:  CONNECTIONS times, one after the other: connect to CLOSE_PORT, read its one byte, close
 *
 * Prints "NAME AMOUNT SECONDS" per line (AMOUNT in bytes or connections), "error NAME: why" on failure.
 * A read or write that waits 120 s fails (a network card that went down must not hang the bench).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *host_addr = "192.0.2.1";

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    struct timeval limit = { .tv_sec = 120 };
    inet_pton(AF_INET, host_addr, &a.sin_addr);
    if (fd >= 0 && (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof(limit)) < 0 ||
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof(limit)) < 0)) {
        close(fd);
        return -1;
    }
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static char buf[256 * 1024];

int main(int argc, char **argv)
{
    struct in_addr check;
    if (argc < 6 || argc > 7 || (argc == 7 && inet_pton(AF_INET, argv[6], &check) != 1)) {
        fprintf(stderr, "usage: tsibench SINK_PORT SOURCE_PORT CLOSE_PORT BYTES CONNECTIONS [HOST_ADDR]\n");
        return 125;
    }
    if (argc == 7)
        host_addr = argv[6];
    int sink = atoi(argv[1]), source = atoi(argv[2]), closer = atoi(argv[3]);
    long bytes = atol(argv[4]);
    int conns = atoi(argv[5]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    memset(buf, 'k', sizeof(buf));

    double t0 = now();
    int fd = dial(sink);
    if (fd < 0) {
        printf("error upload: connect: %s\n", strerror(errno));
        return 1;
    }
    for (long sent = 0; sent < bytes;) {
        size_t n = bytes - sent < (long)sizeof(buf) ? (size_t)(bytes - sent) : sizeof(buf);
        ssize_t w = write(fd, buf, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            printf("error upload: write: %s\n", strerror(errno));
            return 1;
        }
        sent += w;
    }
    shutdown(fd, SHUT_WR);
    while (read(fd, buf, sizeof(buf)) > 0)
        ; /* the server closes once it has every byte */
    close(fd);
    printf("upload %ld %.3f\n", bytes, now() - t0);

    t0 = now();
    fd = dial(source);
    if (fd < 0) {
        printf("error download: connect: %s\n", strerror(errno));
        return 1;
    }
    long got = 0;
    for (ssize_t r; (r = read(fd, buf, sizeof(buf))) != 0;) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            printf("error download: read: %s\n", strerror(errno));
            return 1;
        }
        got += r;
    }
    close(fd);
    if (got != bytes) {
        printf("error download: %ld of %ld bytes\n", got, bytes);
        return 1;
    }
    printf("download %ld %.3f\n", got, now() - t0);

    t0 = now();
    for (int i = 0; i < conns; i++) {
        fd = dial(closer);
        char b;
        if (fd < 0 || read(fd, &b, 1) != 1) {
            printf("error connect: connection %d: %s\n", i, strerror(errno));
            return 1;
        }
        close(fd);
    }
    printf("connect %d %.3f\n", conns, now() - t0);
    return 0;
}
