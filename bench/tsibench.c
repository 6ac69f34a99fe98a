/*
 * tsibench: the guest side of bench/net. TCP through transparent socket impersonation to servers of
 * NetBench.java on the host's loopback (reached as host.krun.internal, 192.0.2.1):
 *
 *   tsibench SINK_PORT SOURCE_PORT CLOSE_PORT BYTES CONNECTIONS
 *
 *   upload:   writes BYTES to SINK_PORT, ends its side, waits for the server's close
 *   download: reads SOURCE_PORT to its end (the server sends BYTES and closes)
 *   connect:  CONNECTIONS times, one after the other: connect to CLOSE_PORT, read its one byte, close
 *
 * Prints "NAME AMOUNT SECONDS" per line (AMOUNT in bytes or connections), "error NAME: why" on failure.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int dial(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, "192.0.2.1", &a.sin_addr);
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
    if (argc != 6) {
        fprintf(stderr, "usage: tsibench SINK_PORT SOURCE_PORT CLOSE_PORT BYTES CONNECTIONS\n");
        return 125;
    }
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
