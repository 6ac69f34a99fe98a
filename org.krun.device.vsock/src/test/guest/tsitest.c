/*
 * tsitest: TSI (transparent socket impersonation) from inside the guest, one process doing every check (a
 * shell script costs seconds per command on kvm-pvm hosts). Run it in a guest booted with krun_tsi=inet.
 *
 *   tsitest [-n] [-t HOST_TCP_ECHO_PORT] [-u HOST_UDP_ECHO_PORT] [-c CLOSED_HOST_PORT]
 *           [-p GUEST_PORT:HOST_PORT] [-e GUEST_PORT] [-w SLOW_PORT] [-b BYTES] [-k CONNECTIONS] [-s STATS_VSOCK_PORT]
 *           [-N] [-R] [-d HOST_DNS_PORT] [-6 HOST_TCP6_ECHO_PORT] [-l GUEST_PORT] [-U HOST_UNIX_ECHO_PATH]
 *           [-W SECONDS] [-T]
 *
 * Always: the guest-local checks (loopback TCP and UDP stay in the guest, bind(0)+listen gives a real port,
 * non-blocking connect and poll, shutdown half-close, getsockname/getpeername, options, ioctl, epoll
 * registered before connect, AF_UNIX (socketpair, a guest listener on a path and an abstract one, with and
 * without unix TSI), another network namespace, ping sockets).
 *   -n  no TSI server is there: connects and sends to the host must fail at once with ENETUNREACH.
 *   -t  a TCP echo server on the host's 127.0.0.1:PORT (reached as host.krun.internal, 192.0.2.1):
 *       blocking and non-blocking connects, half-close, a transfer of -b BYTES (default 1 MiB) checked
 *       byte for byte, -k concurrent connections (default 20).
 *   -u  a UDP echo server there: sendto/recvfrom and connect()+send().
 *   -c  a host port nobody listens on: ECONNREFUSED, blocking and non-blocking.
 *   -p  GUEST_PORT is published as HOST_PORT: a listener on GUEST_PORT reached from the host (the check
 *       connects to 192.0.2.1:HOST_PORT itself, which the VMM turns into the host's loopback).
 *   -e  GUEST_PORT is published as a host port that is taken (TCP and UDP): listen() and bind() fail
 *       with EADDRINUSE.
 *   -w  connects to this host port take 20 s, then are refused (tsi_peer.py --slow-port): connect timeouts
 *       (SO_SNDTIMEO), a signal during a connect, and closing a socket while it connects.
 *   -s  the test TSI server (tsi_peer.py --stats-socket) answers on vsock PORT with its request counts:
 *       the guest-local checks must not have reached it.
 *   -N  the guest's /etc/hosts names host.krun.internal (192.0.2.1, 2001:db8::1); with -t, the echo server
 *       is reached by that name.
 *   -R  /etc/resolv.conf names at least one resolver (the detail lists them, for the host to compare).
 *   -d  a DNS server on the host's 127.0.0.1:PORT that answers any A query with 198.51.100.7: a query over
 *       a connected UDP socket to host.krun.internal.
 *   -6  a TCP echo server on the host's [::1]:PORT, reached as [2001:db8::1]:PORT.
 *   -l  GUEST_PORT is published and the host connects to it (retrying until the guest listens): accept it,
 *       read "from-host\n", answer "from-guest\n".
 *   -U  unix TSI is on (krun_tsi=inet,unix) and a unix stream echo server listens on the host at PATH (a
 *       path the guest's root does not have): reached by that path (blocking, non-blocking, relative to the
 *       working directory), SCM_RIGHTS refused on it, a missing path fails at once with ENOENT, and a guest
 *       listener bound at PATH itself then takes the guest's connects to PATH (the host's server must have
 *       seen 3 connections in all: the host compares).
 *
 * Prints one line per check: "ok NAME [detail]", "FAIL NAME: why" or "skip NAME: why" (-T: and "time NAME
 * SECONDS"); a check that hangs for 60 s (-W SECONDS) is reported and ends the program. Exits with the
 * number of failures.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define HOST_ADDR "192.0.2.1" /* host.krun.internal */

static int failures;
static int opt_watchdog = 60; /* -W: seconds a check may take before it counts as hung */
static const char *current = "start";
static char why[256];

static void watchdog(int sig)
{
    (void)sig;
    char line[128];
    int n = snprintf(line, sizeof(line), "FAIL %s: hung for %d s\n", current, opt_watchdog);
    if (write(1, line, n) < 0)
        _exit(125);
    _exit(100 + failures);
}

static double now(void);
static int opt_timing; /* -T: a "time NAME SECONDS" line after each check */

/* Each check returns 0 (ok, detail in why), 1 (fail, reason in why) or 2 (skip, reason in why). */
typedef int (*check_fn)(void);

static void run(const char *name, check_fn fn)
{
    current = name;
    why[0] = 0;
    alarm(opt_watchdog);
    double t0 = now();
    int r = fn();
    alarm(0);
    double dt = now() - t0;
    if (r == 0)
        printf("ok %s%s%s\n", name, why[0] ? " " : "", why);
    else if (r == 2)
        printf("skip %s: %s\n", name, why);
    else {
        printf("FAIL %s: %s\n", name, why);
        failures++;
    }
    if (opt_timing)
        printf("time %s %.1f s\n", name, dt);
    fflush(stdout);
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    return 1;
}

#define CHECK(cond, ...) do { if (!(cond)) return fail(__VA_ARGS__); } while (0)
#define E strerror(errno)

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static struct sockaddr_in sin4(const char *addr, int port)
{
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
    inet_pton(AF_INET, addr, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 sin6(const char *addr, int port)
{
    struct sockaddr_in6 a = { .sin6_family = AF_INET6, .sin6_port = htons(port) };
    inet_pton(AF_INET6, addr, &a.sin6_addr);
    return a;
}

static int port_of(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                         : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static const char *name_of(int fd, int peer)
{
    static char buf[2][80];
    static int i;
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char host[64];
    char *out = buf[i++ & 1];
    if ((peer ? getpeername(fd, (struct sockaddr *)&ss, &len) : getsockname(fd, (struct sockaddr *)&ss, &len)) < 0) {
        snprintf(out, 80, "(%s)", E);
        return out;
    }
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
        snprintf(out, 80, "%s:%d", host, ntohs(a->sin_port));
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
        snprintf(out, 80, "[%s]:%d", host, ntohs(a->sin6_port));
    } else {
        snprintf(out, 80, "(family %d)", ss.ss_family);
    }
    return out;
}

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        c += w;
        n -= w;
    }
    return 0;
}

/* Reads exactly n bytes (0), or fails (-1; errno 0 at end of stream). */
static int read_all(int fd, void *p, size_t n)
{
    char *c = p;
    while (n) {
        ssize_t r = read(fd, c, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = 0;
        if (r <= 0)
            return -1;
        c += r;
        n -= r;
    }
    return 0;
}

static int wait_fd(int fd, short events, int ms)
{
    struct pollfd p = { .fd = fd, .events = events };
    int n = poll(&p, 1, ms);
    return n <= 0 ? n : p.revents;
}

static int so_error(int fd)
{
    int err = -1;
    socklen_t len = sizeof(err);
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        return -errno;
    return err;
}

static int opt_stats_port;
static long stats_before = -1;

/* linux/vm_sockets.h, which musl does not carry */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[3];
};

/* The test TSI server's count of requests, read over a plain vsock connection (not TSI). */
static long peer_requests(void)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_port = opt_stats_port, .svm_cid = 2 };
    char buf[512];
    size_t got = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    for (ssize_t n; got < sizeof(buf) - 1 && (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0;)
        got += n;
    close(fd);
    buf[got] = 0;
    char *p = strstr(buf, "\"requests\":");
    return p ? atol(p + 11) : -1;
}

static int check_stats_before(void)
{
    if (!opt_stats_port) {
        snprintf(why, sizeof(why), "no -s");
        return 2;
    }
    stats_before = peer_requests();
    CHECK(stats_before >= 0, "no counts from vsock port %d: %s", opt_stats_port, E);
    snprintf(why, sizeof(why), "%ld requests so far", stats_before);
    return 0;
}

static int check_stayed_local(void)
{
    if (stats_before < 0) {
        snprintf(why, sizeof(why), "no counts");
        return 2;
    }
    long after = peer_requests();
    CHECK(after == stats_before, "the TSI server got %ld requests during the guest-local checks", after - stats_before);
    snprintf(why, sizeof(why), "the TSI server got no request (%ld before and after)", after);
    return 0;
}

static int opt_host_tcp, opt_host_udp, opt_closed, opt_guest_port, opt_host_port, opt_no_vmm;
static long opt_bytes = 1 << 20;
static int opt_conns = 20;

/* ---- guest-local checks ---- */

/*
 * Whether sockets are TSI sockets, seen from user space: a TSI socket's file is not the socket the
 * kernel's TCP table lists (that is its inner socket), so their inode numbers differ.
 */
static int check_tsi_active(void)
{
    char cmdline[4096] = "";
    FILE *f = fopen("/proc/cmdline", "r");
    if (f) {
        if (!fgets(cmdline, sizeof(cmdline), f))
            cmdline[0] = 0;
        fclose(f);
    }
    int expect = strstr(cmdline, "krun_tsi=inet") != NULL;
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = sin4("127.0.0.1", 0);
    CHECK(bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 1) == 0, "listen: %s", E);
    struct stat st;
    CHECK(fstat(l, &st) == 0, "fstat: %s", E);
    f = fopen("/proc/net/tcp", "r");
    CHECK(f, "/proc/net/tcp: %s", E);
    char line[512];
    unsigned long ino = 0;
    int found = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned port, state;
        unsigned long inode;
        if (sscanf(line, " %*d: %*x:%x %*x:%*x %x %*x:%*x %*x:%*x %*x %*d %*d %lu", &port, &state, &inode) == 3 &&
            (int)port == port_of(l) && state == 0x0a) {
            ino = inode;
            found = 1;
        }
    }
    fclose(f);
    close(l);
    CHECK(found, "port %d not in /proc/net/tcp", port_of(l));
    int tsi = ino != (unsigned long)st.st_ino;
    CHECK(tsi == expect, "TSI %s but krun_tsi=inet %s the command line", tsi ? "on" : "off", expect ? "is on" : "is not on");
    snprintf(why, sizeof(why), "TSI %s (socket inode %lu, TCP table's %lu)", tsi ? "on" : "off", (unsigned long)st.st_ino, ino);
    return 0;
}

static int check_lo_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0); /* a TSI socket: its ioctls reach the inner socket */
    CHECK(fd >= 0, "socket: %s", E);
    struct ifreq ifr = { 0 };
    strcpy(ifr.ifr_name, "lo");
    CHECK(ioctl(fd, SIOCGIFFLAGS, &ifr) == 0, "SIOCGIFFLAGS: %s", E);
    if (!(ifr.ifr_flags & IFF_UP)) {
        ifr.ifr_flags |= IFF_UP;
        CHECK(ioctl(fd, SIOCSIFFLAGS, &ifr) == 0, "SIOCSIFFLAGS: %s", E);
        snprintf(why, sizeof(why), "(brought up by this test)");
    } else {
        snprintf(why, sizeof(why), "(was up)");
    }
    close(fd);
    return 0;
}

static int check_socket_identity(void)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    CHECK(fd >= 0, "socket: %s", E);
    int v;
    socklen_t len = sizeof(v);
    CHECK(getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &v, &len) == 0 && v == AF_INET6, "SO_DOMAIN %d", v);
    CHECK(getsockopt(fd, SOL_SOCKET, SO_TYPE, &v, &len) == 0 && v == SOCK_STREAM, "SO_TYPE %d", v);
    CHECK(getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &v, &len) == 0 && v == IPPROTO_TCP, "SO_PROTOCOL %d", v);
    CHECK((fcntl(fd, F_GETFL) & O_NONBLOCK) && (fcntl(fd, F_GETFD) & FD_CLOEXEC), "SOCK_NONBLOCK/SOCK_CLOEXEC lost");
    v = 1;
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v)) == 0, "SO_REUSEADDR: %s", E);
    v = 0;
    CHECK(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &len) == 0 && v == 1, "SO_REUSEADDR reads %d", v);
    v = 1;
    CHECK(setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, sizeof(v)) == 0, "TCP_NODELAY: %s", E);
    v = 0;
    CHECK(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) == 0 && v == 1, "TCP_NODELAY reads %d", v);
    v = 0;
    CHECK(getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v, &len) == 0 && v == 0, "IPV6_V6ONLY reads %d", v);
    CHECK(so_error(fd) == 0, "SO_ERROR %d", so_error(fd));
    close(fd);
    int sv[2];
    CHECK(socketpair(AF_INET, SOCK_STREAM, 0, sv) < 0 && errno == EOPNOTSUPP, "socketpair(AF_INET): %s", E);
    return 0;
}

/* A listener on addr (port 0: any), a client connected to it, the accepted socket. */
static int tcp_trio(int family, const char *addr, int *lfd, int *cfd, int *afd)
{
    struct sockaddr_storage ss;
    socklen_t len;
    if (family == AF_INET) {
        struct sockaddr_in a = sin4(addr, 0);
        memcpy(&ss, &a, sizeof(a));
        len = sizeof(a);
    } else {
        struct sockaddr_in6 a = sin6(addr, 0);
        memcpy(&ss, &a, sizeof(a));
        len = sizeof(a);
    }
    *lfd = socket(family, SOCK_STREAM, 0);
    CHECK(*lfd >= 0, "socket: %s", E);
    CHECK(bind(*lfd, (struct sockaddr *)&ss, len) == 0, "bind %s: %s", addr, E);
    CHECK(listen(*lfd, 8) == 0, "listen: %s", E);
    int port = port_of(*lfd);
    CHECK(port > 0, "bind(0)+listen gave port %d", port);
    int v;
    socklen_t vl = sizeof(v);
    CHECK(getsockopt(*lfd, SOL_SOCKET, SO_ACCEPTCONN, &v, &vl) == 0 && v == 1, "SO_ACCEPTCONN %d", v);
    ((struct sockaddr_in *)&ss)->sin_port = htons(port); /* same offset in sockaddr_in6 */
    *cfd = socket(family, SOCK_STREAM, 0);
    CHECK(*cfd >= 0, "socket: %s", E);
    CHECK(connect(*cfd, (struct sockaddr *)&ss, len) == 0, "connect %s:%d: %s", addr, port, E);
    *afd = accept(*lfd, NULL, NULL);
    CHECK(*afd >= 0, "accept: %s", E);
    return 0;
}

static int tcp_loopback(int family, const char *addr)
{
    int l = -1, c = -1, a = -1;
    if (tcp_trio(family, addr, &l, &c, &a))
        return 1;
    char buf[64];
    snprintf(why, sizeof(why), "%s -> %s", name_of(c, 0), name_of(c, 1));
    CHECK(port_of(c) == atoi(strrchr(name_of(a, 1), ':') + 1), "client port %d, server sees %s", port_of(c), name_of(a, 1));
    CHECK(port_of(a) == port_of(l), "accepted socket's port %d, listener's %d", port_of(a), port_of(l));
    CHECK(write_all(c, "ping", 4) == 0, "write: %s", E);
    CHECK(read_all(a, buf, 4) == 0 && !memcmp(buf, "ping", 4), "server read: %s", E);
    int n = -1;
    CHECK(ioctl(c, FIONREAD, &n) == 0 && n == 0, "FIONREAD on empty: %d %s", n, E);
    CHECK(write_all(a, "pong!", 5) == 0, "write: %s", E);
    CHECK(wait_fd(c, POLLIN, 5000) & POLLIN, "poll: no POLLIN");
    CHECK(ioctl(c, FIONREAD, &n) == 0 && n == 5, "FIONREAD %d: %s", n, E);
    CHECK(read_all(c, buf, 5) == 0 && !memcmp(buf, "pong!", 5), "client read: %s", E);
    /* half-close: the client stops sending, the server sees the end and can still answer */
    CHECK(shutdown(c, SHUT_WR) == 0, "shutdown: %s", E);
    CHECK(read(a, buf, sizeof(buf)) == 0, "server did not see the end: %s", E);
    CHECK(write_all(a, "bye", 3) == 0, "write after peer's SHUT_WR: %s", E);
    CHECK(read_all(c, buf, 3) == 0 && !memcmp(buf, "bye", 3), "client read after its SHUT_WR: %s", E);
    close(a);
    CHECK(read(c, buf, sizeof(buf)) == 0, "client did not see the end");
    close(c);
    close(l);
    return 0;
}

static int check_tcp_loopback4(void) { return tcp_loopback(AF_INET, "127.0.0.1"); }
static int check_tcp_loopback6(void) { return tcp_loopback(AF_INET6, "::1"); }

static int check_listen_any_port0(void)
{
    /* bound to 0.0.0.0: the VMM is told (op LISTEN) if there is one; guest clients still reach it */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(l >= 0, "socket: %s", E);
    CHECK(listen(l, 4) == 0, "listen without bind: %s", E);
    int port = port_of(l);
    CHECK(port > 0, "listen gave port %d", port);
    int c = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = sin4("127.0.0.1", port);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, "connect 127.0.0.1:%d: %s", port, E);
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0, "accept: %s", E);
    char b;
    CHECK(write(c, "x", 1) == 1 && read(s, &b, 1) == 1 && b == 'x', "data: %s", E);
    snprintf(why, sizeof(why), "port %d", port);
    close(s);
    close(c);
    close(l);
    return 0;
}

static volatile sig_atomic_t sigio_count;

static void on_sigio(int sig)
{
    (void)sig;
    sigio_count++;
}

static int check_udp_loopback(void)
{
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(a >= 0 && b >= 0, "socket: %s", E);
    struct sockaddr_in la = sin4("127.0.0.1", 0);
    CHECK(bind(a, (struct sockaddr *)&la, sizeof(la)) == 0, "bind: %s", E);
    CHECK(bind(b, (struct sockaddr *)&la, sizeof(la)) == 0, "bind: %s", E);
    struct sockaddr_in ta = sin4("127.0.0.1", port_of(a)), tb = sin4("127.0.0.1", port_of(b));
    CHECK(sendto(a, "one", 3, 0, (struct sockaddr *)&tb, sizeof(tb)) == 3, "sendto: %s", E);
    char buf[16];
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    CHECK(recvfrom(b, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) == 3 && !memcmp(buf, "one", 3), "recvfrom: %s", E);
    CHECK(ntohs(from.sin_port) == port_of(a), "source port %d, sender's %d", ntohs(from.sin_port), port_of(a));
    CHECK(connect(b, (struct sockaddr *)&ta, sizeof(ta)) == 0, "connect: %s", E);
    CHECK(send(b, "two", 3, 0) == 3, "send: %s", E);
    CHECK(recv(a, buf, sizeof(buf), 0) == 3 && !memcmp(buf, "two", 3), "recv: %s", E);
    CHECK(ntohs(((struct sockaddr_in *)&from)->sin_port) && !strcmp(name_of(b, 1), name_of(a, 0)), "getpeername %s, peer is %s", name_of(b, 1), name_of(a, 0));
    /* MSG_TRUNC and MSG_PEEK */
    CHECK(send(b, "truncated", 9, 0) == 9, "send: %s", E);
    CHECK(recv(a, buf, 4, MSG_PEEK) == 4, "peek: %s", E);
    CHECK(recv(a, buf, 4, MSG_TRUNC) == 9, "MSG_TRUNC: %s", E);
    /* a receive timeout */
    struct timeval tv = { .tv_usec = 200000 };
    CHECK(setsockopt(a, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0, "SO_RCVTIMEO: %s", E);
    double t0 = now();
    CHECK(recv(a, buf, sizeof(buf), 0) < 0 && errno == EAGAIN, "recv with timeout: %s", E);
    double dt = now() - t0;
    CHECK(dt > 0.15 && dt < 30, "SO_RCVTIMEO of 0.2 s took %.2f s", dt); /* 30: a hang, not a loaded host */
    /* O_ASYNC: a datagram for the socket raises SIGIO */
    struct sigaction sa = { .sa_handler = on_sigio }, old;
    sigaction(SIGIO, &sa, &old);
    sigio_count = 0;
    CHECK(fcntl(a, F_SETOWN, getpid()) == 0 && fcntl(a, F_SETFL, fcntl(a, F_GETFL) | O_ASYNC) == 0, "O_ASYNC: %s", E);
    CHECK(send(b, "sig", 3, 0) == 3, "send: %s", E);
    for (int i = 0; i < 100 && !sigio_count; i++)
        usleep(10000);
    sigaction(SIGIO, &old, NULL);
    CHECK(sigio_count > 0, "no SIGIO");
    snprintf(why, sizeof(why), "%s <-> %s, timeout %.2f s, SIGIO", name_of(a, 0), name_of(b, 0), dt);
    close(a);
    close(b);
    return 0;
}

static int check_nonblocking_local(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in la = sin4("127.0.0.1", 0);
    CHECK(bind(l, (struct sockaddr *)&la, sizeof(la)) == 0 && listen(l, 4) == 0, "listen: %s", E);
    int port = port_of(l);
    /* epoll registered before the connect: it must still hear the connection complete */
    int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.fd = c };
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, c, &ev) == 0, "epoll_ctl: %s", E);
    struct epoll_event got;
    epoll_wait(ep, &got, 1, 0); /* a fresh socket may report OUT|HUP */
    struct sockaddr_in a = sin4("127.0.0.1", port);
    int r = connect(c, (struct sockaddr *)&a, sizeof(a));
    CHECK(r == 0 || errno == EINPROGRESS, "connect: %s", E);
    CHECK(epoll_wait(ep, &got, 1, 5000) == 1 && (got.events & EPOLLOUT), "epoll: no EPOLLOUT");
    CHECK(so_error(c) == 0, "SO_ERROR %s", strerror(so_error(c)));
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0, "accept: %s", E);
    char b;
    CHECK(read(c, &b, 1) < 0 && errno == EAGAIN, "non-blocking read: %s", E);
    close(s);
    close(c);
    close(ep);
    /* a refused local connect: poll says so, SO_ERROR says why */
    close(l); /* port now closed */
    c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r = connect(c, (struct sockaddr *)&a, sizeof(a));
    if (r < 0 && errno == ECONNREFUSED) {
        snprintf(why, sizeof(why), "refused at once");
    } else {
        CHECK(r < 0 && errno == EINPROGRESS, "connect to a closed port: %d %s", r, E);
        int ev2 = wait_fd(c, POLLOUT, 5000);
        CHECK(ev2 > 0 && (ev2 & (POLLERR | POLLHUP)), "poll after refused connect: %#x", ev2);
        int e = so_error(c);
        CHECK(e == ECONNREFUSED, "SO_ERROR %d (%s), expected ECONNREFUSED", e, strerror(e));
        CHECK(so_error(c) == 0, "SO_ERROR not cleared by reading it");
        snprintf(why, sizeof(why), "refused: poll %#x, SO_ERROR ECONNREFUSED", ev2);
    }
    close(c);
    return 0;
}

static int check_unix(void)
{
    int sv[2];
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair: %s", E);
    char b[4];
    CHECK(write(sv[0], "abc", 3) == 3 && read(sv[1], b, 3) == 3 && !memcmp(b, "abc", 3), "socketpair data: %s", E);
    close(sv[0]);
    close(sv[1]);
    struct sockaddr_un ua = { .sun_family = AF_UNIX };
    snprintf(ua.sun_path, sizeof(ua.sun_path), "/tmp/tsitest.%d.sock", getpid());
    unlink(ua.sun_path);
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&ua, sizeof(ua)) == 0 && listen(l, 2) == 0, "listen on %s: %s", ua.sun_path, E);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&ua, sizeof(ua)) == 0, "connect: %s", E);
    int s = accept(l, NULL, NULL);
    CHECK(s >= 0 && write(c, "xyz", 3) == 3 && read(s, b, 3) == 3, "data: %s", E);
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    CHECK(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid == getpid(), "SO_PEERCRED pid %d", cr.pid);
    close(s);
    close(c);
    close(l);
    unlink(ua.sun_path);

    /* an abstract address: the guest's alone */
    struct sockaddr_un aa = { .sun_family = AF_UNIX };
    int an = snprintf(aa.sun_path + 1, sizeof(aa.sun_path) - 1, "tsitest.%d", getpid());
    socklen_t al = offsetof(struct sockaddr_un, sun_path) + 1 + an;
    l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&aa, al) == 0 && listen(l, 2) == 0, "abstract listen: %s", E);
    c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&aa, al) == 0, "abstract connect: %s", E);
    s = accept(l, NULL, NULL);
    CHECK(s >= 0 && write(s, "abs", 3) == 3 && read(c, b, 3) == 3 && !memcmp(b, "abs", 3), "abstract data: %s", E);
    close(s);
    close(c);
    close(l);
    return 0;
}

static const char *opt_unix; /* -U */

static struct sockaddr_un sun_of(const char *path)
{
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
    return a;
}

/* Sends "unix-N", expects it echoed. */
static int unix_echo(int fd, int n)
{
    char msg[16], got[16];
    int len = snprintf(msg, sizeof(msg), "unix-%d", n);
    CHECK(write_all(fd, msg, len) == 0, "write: %s", E);
    CHECK(read_all(fd, got, len) == 0 && !memcmp(got, msg, len), "echo: %s", E);
    return 0;
}

static int check_unix_host(void)
{
    if (!opt_unix) {
        snprintf(why, sizeof(why), "no -U");
        return 2;
    }
    struct sockaddr_un a = sun_of(opt_unix), peer;
    socklen_t pl = sizeof(peer);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect %s: %s", opt_unix, E);
    if (unix_echo(fd, 1))
        return 1;
    CHECK(getpeername(fd, (struct sockaddr *)&peer, &pl) == 0 && !strcmp(peer.sun_path, opt_unix),
          "getpeername: %s '%s'", E, peer.sun_path);
    /* file descriptors cannot cross to the host */
    int p[2];
    CHECK(pipe(p) == 0, "pipe: %s", E);
    char cbuf[CMSG_SPACE(sizeof(int))] = { 0 };
    struct iovec iov = { .iov_base = "x", .iov_len = 1 };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &p[0], sizeof(int));
    CHECK(sendmsg(fd, &m, 0) < 0 && errno == EOPNOTSUPP, "SCM_RIGHTS to the host: %s", errno ? E : "sent");
    close(p[0]);
    close(p[1]);
    if (unix_echo(fd, 2))
        return 1;
    close(fd);

    /* a non-blocking unix connect completes in the call, as in the kernel's own */
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "non-blocking connect: %s", E);
    int fl = fcntl(fd, F_GETFL);
    CHECK(fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) == 0, "fcntl: %s", E);
    if (unix_echo(fd, 3))
        return 1;
    close(fd);
    snprintf(why, sizeof(why), "%s", opt_unix);
    return 0;
}

static int check_unix_host_missing(void)
{
    if (!opt_unix) {
        snprintf(why, sizeof(why), "no -U");
        return 2;
    }
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    snprintf(path, sizeof(path), "%s.missing", opt_unix);
    struct sockaddr_un a = sun_of(path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    double t0 = now();
    errno = 0;
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == ENOENT, "connect %s: %s", path, errno ? E : "connected");
    double dt = now() - t0;
    CHECK(dt < 5, "ENOENT after %.1f s", dt);
    close(fd);
    snprintf(why, sizeof(why), "ENOENT in %.2f s", dt);
    return 0;
}

/* A relative path is the working directory's: the guest makes PATH's folder (which only the host has) its own. */
static int check_unix_host_relative(void)
{
    if (!opt_unix) {
        snprintf(why, sizeof(why), "no -U");
        return 2;
    }
    char dir[108], cwd[256];
    snprintf(dir, sizeof(dir), "%s", opt_unix);
    char *slash = strrchr(dir, '/');
    CHECK(slash && slash != dir, "PATH %s has no folder", opt_unix);
    *slash = 0;
    for (char *q = dir + 1; *q; q++) { /* mkdir -p */
        if (*q == '/') {
            *q = 0;
            mkdir(dir, 0755);
            *q = '/';
        }
    }
    CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir, E);
    CHECK(getcwd(cwd, sizeof(cwd)) && chdir(dir) == 0, "chdir %s: %s", dir, E);
    struct sockaddr_un a = sun_of(slash + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    int err = errno;
    CHECK(chdir(cwd) == 0, "chdir back: %s", E);
    errno = err;
    CHECK(r == 0, "connect %s in %s: %s", slash + 1, dir, E);
    if (unix_echo(fd, 4))
        return 1;
    close(fd);
    snprintf(why, sizeof(why), "%s in %s", slash + 1, dir);
    return 0;
}

/* A guest listener bound at PATH takes the guest's connects to PATH: the host's server at PATH sees none. */
static int check_unix_guest_listener_first(void)
{
    if (!opt_unix) {
        snprintf(why, sizeof(why), "no -U");
        return 2;
    }
    struct sockaddr_un a = sun_of(opt_unix);
    unlink(opt_unix); /* in the guest's root only */
    int l = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(l >= 0 && bind(l, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(l, 4) == 0, "listen on %s: %s", opt_unix, E);
    int c = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(c, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", E);
    int s = accept(l, NULL, NULL);
    char b[8];
    CHECK(s >= 0 && write(c, "local", 5) == 5 && read_all(s, b, 5) == 0 && !memcmp(b, "local", 5), "data: %s", E);
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    CHECK(getsockopt(s, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid == getpid(), "SO_PEERCRED pid %d", cr.pid);
    cl = sizeof(cr);
    CHECK(getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0 && cr.pid == getpid(), "client's SO_PEERCRED pid %d", cr.pid);
    close(s);
    close(c);
    close(l);
    unlink(opt_unix);
    snprintf(why, sizeof(why), "accepted in the guest");
    return 0;
}

/* In a new network namespace sockets are ordinary ones: a remote connect fails as without TSI. */
static int check_other_netns(void)
{
    int p[2];
    CHECK(pipe(p) == 0, "pipe: %s", E);
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", E);
    if (pid == 0) {
        char msg[200] = "";
        if (unshare(CLONE_NEWNET) < 0) {
            snprintf(msg, sizeof(msg), "S unshare: %s", E);
        } else {
            int fd = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in a = sin4(HOST_ADDR, 9);
            double t0 = now();
            int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
            int e = errno;
            if (r == 0 || e != ENETUNREACH)
                snprintf(msg, sizeof(msg), "F connect in a new netns: %d %s", r, strerror(e));
            else
                snprintf(msg, sizeof(msg), "K ENETUNREACH in %.3f s", now() - t0);
        }
        if (write(p[1], msg, strlen(msg) + 1) < 0)
            _exit(1);
        _exit(0);
    }
    close(p[1]);
    char msg[200] = "";
    ssize_t n = read(p[0], msg, sizeof(msg) - 1);
    close(p[0]);
    waitpid(pid, NULL, 0);
    CHECK(n > 1, "child said nothing");
    snprintf(why, sizeof(why), "%s", msg + 2);
    return msg[0] == 'K' ? 0 : msg[0] == 'S' ? 2 : 1;
}

/* Ping sockets are not TSI's: with only lo they fail at once with a clear errno, never hang. */
static int check_ping(void)
{
    double t0 = now();
    int fd = socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP);
    if (fd < 0) {
        CHECK(errno == EACCES || errno == EPERM || errno == EPROTONOSUPPORT, "socket(ICMP): %s", E);
        snprintf(why, sizeof(why), "socket(SOCK_DGRAM, IPPROTO_ICMP): %s (ping_group_range)", E);
    } else {
        unsigned char echo[8] = { 8, 0, 0, 0, 0, 1, 0, 1 };
        struct sockaddr_in a = sin4(HOST_ADDR, 0);
        int r = sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&a, sizeof(a));
        CHECK(r < 0 && errno == ENETUNREACH, "ping sendto: %d %s", r, E);
        snprintf(why, sizeof(why), "sendto: ENETUNREACH");
        close(fd);
    }
    fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (fd >= 0) {
        unsigned char echo[8] = { 8, 0, 0xf7, 0xfe, 0, 1, 0, 0 };
        struct sockaddr_in a = sin4(HOST_ADDR, 0);
        int r = sendto(fd, echo, sizeof(echo), 0, (struct sockaddr *)&a, sizeof(a));
        CHECK(r < 0 && errno == ENETUNREACH, "raw ICMP sendto: %d %s", r, E);
        close(fd);
        strncat(why, ", raw ICMP: ENETUNREACH", sizeof(why) - strlen(why) - 1);
    }
    CHECK(now() - t0 < 30, "took %.1f s", now() - t0); /* a hang, not a loaded host */
    return 0;
}

/* ---- without a TSI server ---- */

static int check_no_vmm(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = sin4(HOST_ADDR, 80);
    double t0 = now();
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && (errno == ENETUNREACH || errno == ECONNREFUSED), "connect: %d %s", r, E);
    int e1 = errno;
    close(fd);
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    int e2 = errno;
    if (r < 0 && e2 == EINPROGRESS) {
        int ev = wait_fd(fd, POLLOUT, 10000);
        CHECK(ev & POLLERR, "poll %#x", ev);
        e2 = so_error(fd);
    }
    CHECK(r < 0 && (e2 == ENETUNREACH || e2 == ECONNREFUSED), "non-blocking connect: %d %s", r, strerror(e2));
    close(fd);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    r = sendto(fd, "x", 1, 0, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == ENETUNREACH, "udp sendto: %d %s", r, E);
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == ENETUNREACH, "udp connect: %d %s", r, E);
    close(fd);
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = sin6("2001:db8::1", 80);
    r = connect(fd, (struct sockaddr *)&a6, sizeof(a6));
    CHECK(r < 0 && (errno == ENETUNREACH || errno == ECONNREFUSED), "connect [2001:db8::1]: %d %s", r, E);
    close(fd);
    double dt = now() - t0;
    CHECK(dt < 10, "took %.1f s", dt);
    snprintf(why, sizeof(why), "connect: %s, non-blocking: %s, all in %.2f s", strerror(e1), strerror(e2), dt);
    return 0;
}

/* ---- through the VMM ---- */

static int host_connect(int port, int flags)
{
    int fd = socket(AF_INET, SOCK_STREAM | flags, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = sin4(HOST_ADDR, port);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int check_tcp_host(void)
{
    if (!opt_host_tcp) {
        snprintf(why, sizeof(why), "no -t");
        return 2;
    }
    int fd = host_connect(opt_host_tcp, 0);
    CHECK(fd >= 0, "connect %s:%d: %s", HOST_ADDR, opt_host_tcp, E);
    char buf[32];
    CHECK(write_all(fd, "hello", 5) == 0, "write: %s", E);
    CHECK(read_all(fd, buf, 5) == 0 && !memcmp(buf, "hello", 5), "echo: %s", E);
    char peer[80];
    snprintf(peer, sizeof(peer), "%s:%d", HOST_ADDR, opt_host_tcp);
    CHECK(!strcmp(name_of(fd, 1), peer), "getpeername %s", name_of(fd, 1));
    CHECK(port_of(fd) > 0, "getsockname %s", name_of(fd, 0));
    /* half-close through the VMM: the echo server answers what it got, then ends */
    CHECK(write_all(fd, "tail", 4) == 0 && shutdown(fd, SHUT_WR) == 0, "shutdown: %s", E);
    CHECK(read_all(fd, buf, 4) == 0 && !memcmp(buf, "tail", 4), "echo after SHUT_WR: %s", E);
    CHECK(read(fd, buf, 1) == 0, "no end after the server's close: %s", E);
    snprintf(why, sizeof(why), "%s -> %s", name_of(fd, 0), name_of(fd, 1));
    close(fd);
    /* an AF_INET6 socket to a v4-mapped address */
    fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a6 = sin6("::ffff:" HOST_ADDR, opt_host_tcp);
    CHECK(connect(fd, (struct sockaddr *)&a6, sizeof(a6)) == 0, "connect [::ffff:%s]: %s", HOST_ADDR, E);
    CHECK(write_all(fd, "six", 3) == 0 && read_all(fd, buf, 3) == 0 && !memcmp(buf, "six", 3), "echo over v6: %s", E);
    snprintf(peer, sizeof(peer), "[::ffff:%s]:%d", HOST_ADDR, opt_host_tcp);
    CHECK(!strcmp(name_of(fd, 1), peer), "getpeername %s", name_of(fd, 1));
    strncat(why, ", v4-mapped ", sizeof(why) - strlen(why) - 1);
    strncat(why, name_of(fd, 0), sizeof(why) - strlen(why) - 1);
    close(fd);
    return 0;
}

static int check_tcp_host_nonblocking(void)
{
    if (!opt_host_tcp) {
        snprintf(why, sizeof(why), "no -t");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int ep = epoll_create1(0);
    struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLET, .data.fd = fd }, got;
    CHECK(epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0, "epoll_ctl: %s", E);
    epoll_wait(ep, &got, 1, 0);
    struct sockaddr_in a = sin4(HOST_ADDR, opt_host_tcp);
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == EINPROGRESS, "connect: %d %s (expected EINPROGRESS)", r, E);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && (errno == EALREADY || errno == EISCONN), "second connect: %s", E);
    char b;
    CHECK(read(fd, &b, 1) < 0 && (errno == EAGAIN || errno == ENOTCONN), "read while connecting: %s", E);
    CHECK(epoll_wait(ep, &got, 1, 10000) == 1 && (got.events & EPOLLOUT), "epoll (registered before connect): no EPOLLOUT");
    CHECK(so_error(fd) == 0, "SO_ERROR %s", strerror(so_error(fd)));
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == EISCONN, "connect when connected: %s", E);
    CHECK(read(fd, &b, 1) < 0 && errno == EAGAIN, "non-blocking read: %s", E);
    CHECK(write(fd, "nb", 2) == 2, "write: %s", E);
    /* edge-triggered: credit updates may report EPOLLOUT first */
    double until = now() + 10;
    do
        got.events = 0;
    while (epoll_wait(ep, &got, 1, 1000) >= 0 && !(got.events & EPOLLIN) && now() < until);
    CHECK(got.events & EPOLLIN, "epoll: no EPOLLIN for the echo");
    char buf[2];
    CHECK(read(fd, buf, 2) == 2 && !memcmp(buf, "nb", 2), "echo: %s", E);
    close(ep);
    close(fd);
    return 0;
}

static int check_tcp_refused(void)
{
    if (!opt_closed) {
        snprintf(why, sizeof(why), "no -c");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = sin4(HOST_ADDR, opt_closed);
    double t0 = now();
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == ECONNREFUSED, "blocking connect: %d %s", r, E);
    double t1 = now();
    /* the same socket may try again, as with TCP */
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == ECONNREFUSED, "second connect: %d %s", r, E);
    double t2 = now();
    close(fd);
    double t3 = now();
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    CHECK(r < 0 && errno == EINPROGRESS, "non-blocking connect: %d %s", r, E);
    double t4 = now();
    int ev = wait_fd(fd, POLLOUT, 10000);
    CHECK(ev & POLLERR, "poll %#x", ev);
    int e = so_error(fd);
    CHECK(e == ECONNREFUSED, "SO_ERROR %s", strerror(e));
    double t5 = now();
    close(fd);
    snprintf(why, sizeof(why), "refused in %.3f s, again %.3f s, close %.3f s, non-blocking connect %.3f s + poll %.3f s",
             t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4);
    return 0;
}

static int check_tcp_transfer(void)
{
    if (!opt_host_tcp) {
        snprintf(why, sizeof(why), "no -t");
        return 2;
    }
    int fd = host_connect(opt_host_tcp, 0);
    CHECK(fd >= 0, "connect: %s", E);
    /* a writer child, so that the echo's back-pressure cannot deadlock us */
    pid_t pid = fork();
    CHECK(pid >= 0, "fork: %s", E);
    uint64_t x = 42;
    static unsigned char buf[65536], got[65536];
    if (pid == 0) {
        for (long sent = 0; sent < opt_bytes;) {
            size_t n = opt_bytes - sent < (long)sizeof(buf) ? (size_t)(opt_bytes - sent) : sizeof(buf);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                buf[i] = (unsigned char)x;
            }
            if (write_all(fd, buf, n) < 0)
                _exit(1);
            sent += n;
        }
        shutdown(fd, SHUT_WR);
        _exit(0);
    }
    double t0 = now();
    long total = 0;
    int bad = 0;
    for (;;) {
        ssize_t n = read(fd, got, sizeof(got));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (ssize_t i = 0; i < n; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            if (got[i] != (unsigned char)x)
                bad++;
        }
        total += n;
    }
    int st;
    waitpid(pid, &st, 0);
    double dt = now() - t0;
    close(fd);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "writer failed");
    CHECK(total == opt_bytes && !bad, "got %ld of %ld bytes, %d differ", total, opt_bytes, bad);
    snprintf(why, sizeof(why), "%ld bytes each way in %.1f s (%.2f MiB/s)", total, dt, total / dt / 1048576);
    return 0;
}

/* A client that writes and closes at once: all of it reaches the host (the echo server counts it). */
static int check_tcp_write_close(void)
{
    if (!opt_host_tcp) {
        snprintf(why, sizeof(why), "no -t");
        return 2;
    }
    static char data[200000];
    memset(data, 'w', sizeof(data));
    data[0] = 'W';
    int fd = host_connect(opt_host_tcp, 0);
    CHECK(fd >= 0, "connect: %s", E);
    CHECK(write_all(fd, data, sizeof(data)) == 0, "write: %s", E);
    close(fd);
    long count = -1;
    for (int i = 0; i < 40 && count != (long)sizeof(data) - 1; i++) {
        usleep(250000);
        fd = host_connect(opt_host_tcp, 0);
        CHECK(fd >= 0, "connect: %s", E);
        char buf[32] = "";
        CHECK(write(fd, "Q", 1) == 1 && read(fd, buf, sizeof(buf) - 1) > 0, "query: %s", E);
        count = atol(buf);
        close(fd);
    }
    CHECK(count == (long)sizeof(data) - 1, "the host got %ld of %zu bytes", count, sizeof(data) - 1);
    snprintf(why, sizeof(why), "%ld bytes", count);
    return 0;
}

static int check_tcp_concurrent(void)
{
    if (!opt_host_tcp) {
        snprintf(why, sizeof(why), "no -t");
        return 2;
    }
    int n = opt_conns, fds[256];
    if (n > 256)
        n = 256;
    double t0 = now();
    for (int i = 0; i < n; i++) {
        fds[i] = host_connect(opt_host_tcp, SOCK_NONBLOCK);
        CHECK(fds[i] >= 0, "connect %d: %s", i, E);
    }
    for (int i = 0; i < n; i++) {
        CHECK(wait_fd(fds[i], POLLOUT, 20000) & POLLOUT, "connection %d not up", i);
        CHECK(so_error(fds[i]) == 0, "connection %d: %s", i, strerror(so_error(fds[i])));
        char msg[16];
        int len = snprintf(msg, sizeof(msg), "c%d", i);
        CHECK(write(fds[i], msg, len) == len, "write %d: %s", i, E);
    }
    for (int i = 0; i < n; i++) {
        char msg[16], buf[16];
        int len = snprintf(msg, sizeof(msg), "c%d", i);
        CHECK(wait_fd(fds[i], POLLIN, 20000) & POLLIN, "no echo on %d", i);
        CHECK(read(fds[i], buf, sizeof(buf)) == len && !memcmp(buf, msg, len), "echo %d", i);
        close(fds[i]);
    }
    snprintf(why, sizeof(why), "%d connections in %.1f s", n, now() - t0);
    return 0;
}

static int check_udp_host(void)
{
    if (!opt_host_udp) {
        snprintf(why, sizeof(why), "no -u");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = sin4(HOST_ADDR, opt_host_udp), from;
    socklen_t fl = sizeof(from);
    char buf[64];
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(sendto(fd, "dgram", 5, 0, (struct sockaddr *)&a, sizeof(a)) == 5, "sendto: %s", E);
    CHECK(recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) == 5 && !memcmp(buf, "dgram", 5), "recvfrom: %s", E);
    CHECK(from.sin_family == AF_INET && !memcmp(&from.sin_addr, &a.sin_addr, 4) && from.sin_port == a.sin_port, "reply from %s:%d", inet_ntoa(from.sin_addr), ntohs(from.sin_port));
    CHECK(port_of(fd) > 0, "no local port after sendto: %s", name_of(fd, 0));
    close(fd);
    /* connect() then send(): libkrun bug 4 */
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", E);
    char peer[80];
    snprintf(peer, sizeof(peer), "%s:%d", HOST_ADDR, opt_host_udp);
    CHECK(!strcmp(name_of(fd, 1), peer), "getpeername %s", name_of(fd, 1));
    CHECK(send(fd, "conn", 4, 0) == 4, "send: %s", E);
    CHECK(wait_fd(fd, POLLIN, 10000) & POLLIN, "poll: no POLLIN");
    int n = -1;
    CHECK(ioctl(fd, FIONREAD, &n) == 0 && n == 4, "FIONREAD %d", n);
    CHECK(recv(fd, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "conn", 4), "recv: %s", E);
    static char big[60000];
    memset(big, 'b', sizeof(big));
    CHECK(send(fd, big, sizeof(big), 0) == (ssize_t)sizeof(big), "send 60000: %s", E);
    CHECK(recv(fd, big, sizeof(big), 0) == (ssize_t)sizeof(big), "recv 60000: %s", E);
    /* a loopback destination still stays in the guest */
    struct sockaddr_in lo = sin4("127.0.0.1", 9);
    CHECK(sendto(fd, "x", 1, 0, (struct sockaddr *)&lo, sizeof(lo)) == 1, "sendto 127.0.0.1 from a VMM-connected socket: %s", E);
    close(fd);
    return 0;
}

static int check_published(void)
{
    if (!opt_guest_port) {
        snprintf(why, sizeof(why), "no -p");
        return 2;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int v = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &v, sizeof(v));
    struct sockaddr_in any = sin4("0.0.0.0", opt_guest_port);
    CHECK(bind(l, (struct sockaddr *)&any, sizeof(any)) == 0, "bind: %s", E);
    CHECK(listen(l, 4) == 0, "listen: %s", E);
    /* reached from the host: through the VMM to its host port, which the VMM publishes back here */
    int c = host_connect(opt_host_port, SOCK_NONBLOCK);
    CHECK(c >= 0, "connect to host port %d: %s", opt_host_port, E);
    struct pollfd p = { .fd = l, .events = POLLIN };
    CHECK(poll(&p, 1, 20000) == 1 && (p.revents & POLLIN), "poll on the listener: %#x", p.revents);
    struct sockaddr_in from;
    socklen_t fl = sizeof(from);
    int s = accept(l, (struct sockaddr *)&from, &fl);
    CHECK(s >= 0, "accept: %s", E);
    CHECK(wait_fd(c, POLLOUT, 20000) & POLLOUT, "client not connected");
    CHECK(so_error(c) == 0, "client: %s", strerror(so_error(c)));
    char buf[8];
    CHECK(write_all(c, "in", 2) == 0 && read_all(s, buf, 2) == 0 && !memcmp(buf, "in", 2), "host->guest: %s", E);
    CHECK(write_all(s, "out", 3) == 0, "write: %s", E);
    CHECK(wait_fd(c, POLLIN, 20000) & POLLIN, "no data at the host side");
    CHECK(read(c, buf, 3) == 3 && !memcmp(buf, "out", 3), "guest->host: %s", E);
    snprintf(why, sizeof(why), "accepted from %s:%d, accepted socket %s -> %s", inet_ntoa(from.sin_addr), ntohs(from.sin_port),
             name_of(s, 0), name_of(s, 1));
    close(s);
    CHECK(wait_fd(c, POLLIN, 20000) & POLLIN, "host side did not see the close");
    CHECK(read(c, buf, 1) == 0, "host side: no end");
    close(c);
    close(l);
    return 0;
}

static int check_published_udp(void)
{
    if (!opt_guest_port) {
        snprintf(why, sizeof(why), "no -p");
        return 2;
    }
    int srv = socket(AF_INET, SOCK_DGRAM, 0), cli = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in any = sin4("0.0.0.0", opt_guest_port), pub = sin4(HOST_ADDR, opt_host_port), from;
    socklen_t fl = sizeof(from);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(srv, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(cli, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(bind(srv, (struct sockaddr *)&any, sizeof(any)) == 0, "bind 0.0.0.0:%d: %s", opt_guest_port, E);
    CHECK(port_of(srv) == opt_guest_port, "bound to %s", name_of(srv, 0));
    /* from the host: through the VMM to the published host port, which the VMM hands to srv */
    CHECK(sendto(cli, "req", 3, 0, (struct sockaddr *)&pub, sizeof(pub)) == 3, "sendto: %s", E);
    char buf[16];
    CHECK(recvfrom(srv, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) == 3 && !memcmp(buf, "req", 3), "server recvfrom: %s", E);
    CHECK(sendto(srv, "resp", 4, 0, (struct sockaddr *)&from, fl) == 4, "reply: %s", E);
    CHECK(recv(cli, buf, sizeof(buf), 0) == 4 && !memcmp(buf, "resp", 4), "client recv: %s", E);
    snprintf(why, sizeof(why), "datagram from %s:%d", inet_ntoa(from.sin_addr), ntohs(from.sin_port));
    close(srv);
    close(cli);
    return 0;
}

static int opt_taken;

static int check_published_taken(void)
{
    if (!opt_taken) {
        snprintf(why, sizeof(why), "no -e");
        return 2;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = sin4("0.0.0.0", opt_taken);
    CHECK(bind(l, (struct sockaddr *)&any, sizeof(any)) == 0, "bind: %s", E);
    CHECK(listen(l, 1) < 0 && errno == EADDRINUSE, "listen on a port published as a taken host port: %s", E);
    close(l);
    int u = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(bind(u, (struct sockaddr *)&any, sizeof(any)) < 0 && errno == EADDRINUSE, "udp bind: %s", E);
    close(u);
    /* the same port on loopback is the guest's own */
    l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in lo = sin4("127.0.0.1", opt_taken);
    CHECK(bind(l, (struct sockaddr *)&lo, sizeof(lo)) == 0 && listen(l, 1) == 0, "listen on 127.0.0.1: %s", E);
    close(l);
    return 0;
}

static int opt_slow;

static void on_alarm(int sig)
{
    (void)sig;
}

static int check_slow_connect(void)
{
    if (!opt_slow) {
        snprintf(why, sizeof(why), "no -w");
        return 2;
    }
    struct sockaddr_in a = sin4(HOST_ADDR, opt_slow);
    /* closed while connecting: close returns at once */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == EINPROGRESS, "connect: %s", E);
    double t0 = now();
    close(fd);
    CHECK(now() - t0 < 2, "close while connecting took %.1f s", now() - t0);
    /* SO_SNDTIMEO bounds a blocking connect, which then goes on in the background */
    fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = { .tv_sec = 1 };
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    t0 = now();
    int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    double dt = now() - t0;
    CHECK(r < 0 && errno == EINPROGRESS && dt > 0.8 && dt < 5, "connect with a 1 s SO_SNDTIMEO: %d %s after %.1f s", r, E, dt);
    int ev = wait_fd(fd, POLLOUT, 40000);
    CHECK(ev & POLLERR, "poll %#x", ev);
    CHECK(so_error(fd) == ECONNREFUSED, "SO_ERROR %s", strerror(so_error(fd)));
    close(fd);
    /* a signal interrupts a blocking connect */
    struct sigaction sa = { .sa_handler = on_alarm }, old;
    sigaction(SIGALRM, &sa, &old);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    t0 = now();
    alarm(1);
    r = connect(fd, (struct sockaddr *)&a, sizeof(a));
    int e = errno;
    alarm(opt_watchdog);
    sigaction(SIGALRM, &old, NULL);
    dt = now() - t0;
    CHECK(r < 0 && e == EINTR && dt < 5, "connect interrupted by a signal: %d %s after %.1f s", r, strerror(e), dt);
    /* as TCP: connect again waits for the attempt under way, which the server refuses */
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0 && errno == ECONNREFUSED, "connect again: %s", E);
    close(fd);
    snprintf(why, sizeof(why), "timeout after %.1f s, EINTR after %.1f s", 1.0, dt);
    return 0;
}

static long sockets_used(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    char line[256];
    long n = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "sockets: used %ld", &n) == 1)
            break;
    if (f)
        fclose(f);
    return n;
}

/* Sockets made and closed leave nothing behind. */
static int check_no_leak(void)
{
    long before = sockets_used();
    CHECK(before >= 0, "/proc/net/sockstat: %s", E);
    int fds[200];
    for (int i = 0; i < 200; i += 2) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        fds[i + 1] = socket(AF_INET6, SOCK_DGRAM, 0);
        struct sockaddr_in6 lo = sin6("::1", 0);
        CHECK(fds[i] >= 0 && fds[i + 1] >= 0 && bind(fds[i + 1], (struct sockaddr *)&lo, sizeof(lo)) == 0, "socket/bind: %s", E);
    }
    long during = sockets_used();
    for (int i = 0; i < 200; i++)
        close(fds[i]);
    long after = sockets_used();
    CHECK(during >= before + 200, "sockets in use: %ld before, %ld with 200 open", before, during);
    CHECK(after == before, "sockets in use %ld before, %ld after", before, after);
    snprintf(why, sizeof(why), "200 sockets made and closed: %ld in use before, %ld with them, %ld after", before, during, after);
    return 0;
}

/* ---- names, resolvers, IPv6, a listener the host reaches ---- */

static int opt_names, opt_resolv, opt_dns, opt_v6, opt_listen;

static int lookup(int family, const char *name, char *out, size_t len)
{
    struct addrinfo hints = { .ai_family = family, .ai_socktype = SOCK_STREAM }, *res;
    int r = getaddrinfo(name, NULL, &hints, &res);
    if (r != 0) {
        snprintf(out, len, "(%s)", gai_strerror(r));
        return -1;
    }
    if (res->ai_family == AF_INET)
        inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, out, len);
    else
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, out, len);
    freeaddrinfo(res);
    return 0;
}

static int check_host_name(void)
{
    if (!opt_names) {
        snprintf(why, sizeof(why), "no -N");
        return 2;
    }
    char v4[64], v6[64];
    CHECK(lookup(AF_INET, "host.krun.internal", v4, sizeof(v4)) == 0 && !strcmp(v4, HOST_ADDR), "host.krun.internal: %s", v4);
    CHECK(lookup(AF_INET6, "host.krun.internal", v6, sizeof(v6)) == 0 && !strcmp(v6, "2001:db8::1"), "host.krun.internal (IPv6): %s", v6);
    snprintf(why, sizeof(why), "host.krun.internal is %s and %s", v4, v6);
    if (!opt_host_tcp)
        return 0;
    /* a client as programs write it: a name and a port, through getaddrinfo */
    char port[16];
    snprintf(port, sizeof(port), "%d", opt_host_tcp);
    struct addrinfo hints = { .ai_family = AF_INET, .ai_socktype = SOCK_STREAM }, *res;
    CHECK(getaddrinfo("host.krun.internal", port, &hints, &res) == 0, "getaddrinfo with a port");
    int fd = socket(res->ai_family, res->ai_socktype, res->ai_protocol);
    int r = connect(fd, res->ai_addr, res->ai_addrlen);
    freeaddrinfo(res);
    CHECK(r == 0, "connect host.krun.internal:%s: %s", port, E);
    char buf[8];
    CHECK(write_all(fd, "byname", 6) == 0 && read_all(fd, buf, 6) == 0 && !memcmp(buf, "byname", 6), "echo: %s", E);
    close(fd);
    strncat(why, "; echo by name", sizeof(why) - strlen(why) - 1);
    return 0;
}

static int check_resolv_conf(void)
{
    if (!opt_resolv) {
        snprintf(why, sizeof(why), "no -R");
        return 2;
    }
    FILE *f = fopen("/etc/resolv.conf", "r");
    CHECK(f, "/etc/resolv.conf: %s", E);
    char line[256], list[200] = "";
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        char ns[128];
        if (sscanf(line, " nameserver %127s", ns) == 1) {
            snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", n++ ? "," : "", ns);
        }
    }
    fclose(f);
    CHECK(n > 0, "no nameserver in /etc/resolv.conf");
    snprintf(why, sizeof(why), "nameservers=%s", list);
    return 0;
}

/* A DNS query for probe.krun.test (type A) over a connected UDP socket; the answer's address. */
static int check_dns(void)
{
    if (!opt_dns) {
        snprintf(why, sizeof(why), "no -d");
        return 2;
    }
    static const unsigned char query[] = {
        0x4b, 0x52, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0,
        5, 'p', 'r', 'o', 'b', 'e', 4, 'k', 'r', 'u', 'n', 4, 't', 'e', 's', 't', 0,
        0, 1, 0, 1,
    };
    char host[64];
    CHECK(lookup(AF_INET, "host.krun.internal", host, sizeof(host)) == 0, "host.krun.internal: %s", host);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = sin4(host, opt_dns);
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect: %s", E);
    CHECK(send(fd, query, sizeof(query), 0) == (ssize_t)sizeof(query), "send: %s", E);
    unsigned char ans[512];
    ssize_t n = recv(fd, ans, sizeof(ans), 0);
    close(fd);
    CHECK(n >= (ssize_t)sizeof(query) + 16, "recv: %zd %s", n, E);
    CHECK(ans[0] == 0x4b && ans[1] == 0x52, "answer id %02x%02x", ans[0], ans[1]);
    CHECK((ans[2] & 0x80) && (ans[3] & 0x0f) == 0, "flags %02x%02x", ans[2], ans[3]);
    CHECK(ans[6] == 0 && ans[7] == 1, "%d answers", ans[6] << 8 | ans[7]);
    const unsigned char *rr = ans + sizeof(query);
    CHECK(rr[2] == 0 && rr[3] == 1 && rr[10] == 0 && rr[11] == 4, "answer is not an A record");
    char addr[32];
    snprintf(addr, sizeof(addr), "%d.%d.%d.%d", rr[12], rr[13], rr[14], rr[15]);
    CHECK(!strcmp(addr, "198.51.100.7"), "probe.krun.test is %s", addr);
    snprintf(why, sizeof(why), "probe.krun.test A %s from %s:%d", addr, host, opt_dns);
    return 0;
}

static int check_tcp_host6(void)
{
    if (!opt_v6) {
        snprintf(why, sizeof(why), "no -6");
        return 2;
    }
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 a = sin6("2001:db8::1", opt_v6);
    CHECK(connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0, "connect [2001:db8::1]:%d: %s", opt_v6, E);
    char buf[8], peer[80];
    CHECK(write_all(fd, "ipv6", 4) == 0 && read_all(fd, buf, 4) == 0 && !memcmp(buf, "ipv6", 4), "echo: %s", E);
    snprintf(peer, sizeof(peer), "[2001:db8::1]:%d", opt_v6);
    CHECK(!strcmp(name_of(fd, 1), peer), "getpeername %s", name_of(fd, 1));
    CHECK(port_of(fd) > 0, "getsockname %s", name_of(fd, 0));
    snprintf(why, sizeof(why), "%s -> %s", name_of(fd, 0), name_of(fd, 1));
    close(fd);
    return 0;
}

static int check_listen_for_host(void)
{
    if (!opt_listen) {
        snprintf(why, sizeof(why), "no -l");
        return 2;
    }
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in any = sin4("0.0.0.0", opt_listen), from;
    socklen_t fl = sizeof(from);
    CHECK(bind(l, (struct sockaddr *)&any, sizeof(any)) == 0 && listen(l, 4) == 0, "listen on %d: %s", opt_listen, E);
    alarm(opt_watchdog > 120 ? opt_watchdog : 120); /* the host retries until this listener is up */
    int s = accept(l, (struct sockaddr *)&from, &fl);
    CHECK(s >= 0, "accept: %s", E);
    char buf[16];
    CHECK(read_all(s, buf, 10) == 0 && !memcmp(buf, "from-host\n", 10), "read: %s", E);
    CHECK(write_all(s, "from-guest\n", 11) == 0, "write: %s", E);
    snprintf(why, sizeof(why), "accepted %s -> %s, the host's peer %s:%d", name_of(s, 0), name_of(s, 1),
             inet_ntoa(from.sin_addr), ntohs(from.sin_port));
    close(s);
    close(l);
    return 0;
}

int main(int argc, char **argv)
{
    int opt;
    while ((opt = getopt(argc, argv, "nt:u:c:p:b:k:s:e:w:NRd:6:l:U:W:T")) != -1) {
        switch (opt) {
        case 's': opt_stats_port = atoi(optarg); break;
        case 'e': opt_taken = atoi(optarg); break;
        case 'w': opt_slow = atoi(optarg); break;
        case 'n': opt_no_vmm = 1; break;
        case 'N': opt_names = 1; break;
        case 'W': opt_watchdog = atoi(optarg); break;
        case 'T': opt_timing = 1; break;
        case 'R': opt_resolv = 1; break;
        case 'd': opt_dns = atoi(optarg); break;
        case '6': opt_v6 = atoi(optarg); break;
        case 'l': opt_listen = atoi(optarg); break;
        case 'U': opt_unix = optarg; break;
        case 't': opt_host_tcp = atoi(optarg); break;
        case 'u': opt_host_udp = atoi(optarg); break;
        case 'c': opt_closed = atoi(optarg); break;
        case 'p':
            if (sscanf(optarg, "%d:%d", &opt_guest_port, &opt_host_port) != 2) {
                fprintf(stderr, "tsitest: -p GUEST_PORT:HOST_PORT\n");
                return 125;
            }
            break;
        case 'b': opt_bytes = atol(optarg); break;
        case 'k': opt_conns = atoi(optarg); break;
        default:
            fprintf(stderr, "usage: tsitest [-n] [-t PORT] [-u PORT] [-c PORT] [-p GUEST:HOST] [-e GUEST] [-b BYTES] [-k N] [-s VSOCKPORT] [-N] [-R] [-d PORT] [-6 PORT] [-l GUEST] [-U PATH] [-W SECONDS] [-T]\n");
            return 125;
        }
    }
    signal(SIGALRM, watchdog);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);

    run("lo_up_via_tsi_ioctl", check_lo_up);
    run("peer_counts_before", check_stats_before);
    run("tsi_active_as_asked", check_tsi_active);
    run("socket_identity_and_options", check_socket_identity);
    run("tcp_loopback4", check_tcp_loopback4);
    run("tcp_loopback6", check_tcp_loopback6);
    run("udp_loopback", check_udp_loopback);
    run("nonblocking_local_connect", check_nonblocking_local);
    run("af_unix_untouched", check_unix);
    run("unix_host", check_unix_host);
    run("unix_host_missing_enoent", check_unix_host_missing);
    run("unix_host_relative_path", check_unix_host_relative);
    run("unix_guest_listener_stays_local", check_unix_guest_listener_first);
    run("other_netns_untouched", check_other_netns);
    run("icmp_ping_fails_clearly", check_ping);
    run("local_traffic_stayed_local", check_stayed_local);
    run("listen_port0_reached_locally", check_listen_any_port0);
    run("no_socket_leak", check_no_leak);
    if (opt_no_vmm)
        run("no_vmm_fails_at_once", check_no_vmm);
    run("tcp_host", check_tcp_host);
    run("tcp_host_nonblocking_epoll", check_tcp_host_nonblocking);
    run("tcp_host_refused", check_tcp_refused);
    run("tcp_host_transfer", check_tcp_transfer);
    run("tcp_host_concurrent", check_tcp_concurrent);
    run("tcp_host_write_then_close", check_tcp_write_close);
    run("udp_host", check_udp_host);
    run("published_listener", check_published);
    run("published_udp", check_published_udp);
    run("host_name", check_host_name);
    run("resolv_conf", check_resolv_conf);
    run("dns_query_to_host", check_dns);
    run("tcp_host_ipv6", check_tcp_host6);
    run("published_listener_from_host", check_listen_for_host);
    run("published_port_taken", check_published_taken);
    run("slow_connect_timeout_signal_close", check_slow_connect);
    printf("%s: %d failed\n", failures ? "FAILED" : "PASSED", failures);
    return failures;
}
