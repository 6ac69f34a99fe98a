/*
 * netcheck: network cards from inside the guest, one process doing every step (a shell script costs seconds
 * per command on kvm-pvm hosts). Steps, in the order given on the command line:
 *   iface:MAC          the interface with address MAC: prints "iface NAME MAC up|down ADDRESS/PREFIX MTU"
 *   route              prints "route GATEWAY DEV" for the default route (from /proc/net/route), or "route none"
 *   dev                prints each card's counters (from /proc/net/dev)
 *   kmsg               prints the kernel's messages that name virtio or eth
 *   put:IP:PORT:BYTES  connect over TCP, send BYTES of the test pattern, shut down the sending side, read the
 *                      host's answer (its 16-hex-digit checksum of what it got) and compare it with ours
 *   get:IP:PORT:BYTES  connect over TCP, read until the host closes, expect BYTES of the test pattern (the
 *                      checksum of what came is printed: put's for the same BYTES)
 *   http:IP:PORT:BYTES an HTTP/1.0 GET of /pattern: status 200, a Content-Length of BYTES, and a body of
 *                      BYTES of the test pattern (its checksum is printed)
 *   serve:PORT:BYTES   listen on PORT; to the first connection whose client sends a line (its request, as
 *                      HTTP's clients do), send BYTES of the test pattern and close it
 *   udp:IP:PORT:TEXT   send TEXT in a datagram and expect it back (an echo), 5 tries, 2 s each
 *   userve:PORT:SECS   bind UDP PORT and echo the first datagram that comes within SECS seconds to its sender
 *   ping:IP            an ICMP echo request (raw socket) and its reply, 10 tries, 1 s each
 *   resolve:NAME:IP    NAME's IPv4 address through the C library's resolver (getaddrinfo, which reads the
 *                      /etc/resolv.conf init wrote) must be IP
 *   offload:MAC        the interface with address MAC: prints "offload NAME FEATURE..." with the features the
 *                      kernel has active on it (ethtool's names, SIOCETHTOOL ETHTOOL_GFEATURES)
 *   sysctl:KEY         prints "sysctl KEY VALUE", the value of /proc/sys/KEY (dots for slashes)
 *   sysctl:KEY=VALUE   writes VALUE there first: prints "sysctl KEY OLD -> NEW"
 *   cpu                prints the guest's CPU time so far, "cpu user U system S idle I irq Q softirq F" in
 *                      clock ticks (from /proc/stat), so a step's cost shows between two of them
 * Prints one line per step ("... ok MS" or "... FAIL reason"); exits with the number of failed steps.
 *
 * The pattern is xorshift64 from seed 42, eight bytes little-endian at a time; the checksum is 64-bit
 * FNV-1a over the bytes (the Java side computes both the same way).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static void pattern(unsigned char *buf, size_t n, uint64_t *state)
{
    for (size_t i = 0; i < n; i += 8) {
        uint64_t x = *state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *state = x;
        for (size_t j = 0; j < 8 && i + j < n; j++)
            buf[i + j] = (unsigned char)(x >> (8 * j));
    }
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static long now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int failures;

static void fail(const char *step, const char *fmt, const char *detail)
{
    printf("%s FAIL ", step);
    printf(fmt, detail);
    printf("\n");
    fflush(stdout);
    failures++;
}


/* The name of the interface with address MAC into name (IF_NAMESIZE bytes); -1 when none has it. */
static int ifname_of(const char *mac, char *name)
{
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    int found = -1;
    while (found && d && (e = readdir(d))) {
        char path[300], buf[64];
        if (e->d_name[0] == '.' || strlen(e->d_name) >= IF_NAMESIZE)
            continue;
        snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n >= 17 && !strncasecmp(buf, mac, 17)) {
            snprintf(name, IF_NAMESIZE, "%s", e->d_name);
            found = 0;
        }
    }
    if (d)
        closedir(d);
    return found;
}

/* linux/ethtool.h, which musl's headers lack */
#define SIOCETHTOOL_ 0x8946
#define ETHTOOL_GSTRINGS_ 0x1b
#define ETHTOOL_GSSET_INFO_ 0x37
#define ETHTOOL_GFEATURES_ 0x3a
#define ETH_SS_FEATURES_ 4
#define ETH_GSTRING_LEN_ 32

static void offload(const char *step, const char *mac)
{
    char name[IF_NAMESIZE];
    if (ifname_of(mac, name)) {
        fail(step, "no interface has address %s", mac);
        return;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", name);
    /* struct ethtool_sset_info: cmd, reserved, sset_mask (u64), then one u32 per set in the mask */
    struct {
        uint32_t cmd, reserved;
        uint64_t mask;
        uint32_t data[1];
    } info = {ETHTOOL_GSSET_INFO_, 0, 1ULL << ETH_SS_FEATURES_, {0}};
    ifr.ifr_data = (void *)&info;
    if (ioctl(s, SIOCETHTOOL_, &ifr) || !info.mask || info.data[0] == 0 || info.data[0] > 256) {
        close(s);
        fail(step, "ETHTOOL_GSSET_INFO: %s", strerror(errno));
        return;
    }
    uint32_t count = info.data[0];
    static uint32_t strings[3 + 256 * ETH_GSTRING_LEN_ / 4]; /* struct ethtool_gstrings: cmd, string_set, len, data */
    strings[0] = ETHTOOL_GSTRINGS_;
    strings[1] = ETH_SS_FEATURES_;
    strings[2] = count;
    ifr.ifr_data = (void *)strings;
    static uint32_t features[2 + 4 * 8]; /* struct ethtool_gfeatures: cmd, size, then {available, requested, active, never_changed} */
    features[0] = ETHTOOL_GFEATURES_;
    features[1] = 8;
    if (ioctl(s, SIOCETHTOOL_, &ifr)) {
        close(s);
        fail(step, "ETHTOOL_GSTRINGS: %s", strerror(errno));
        return;
    }
    ifr.ifr_data = (void *)features;
    if (ioctl(s, SIOCETHTOOL_, &ifr)) {
        close(s);
        fail(step, "ETHTOOL_GFEATURES: %s", strerror(errno));
        return;
    }
    close(s);
    printf("offload %s", name);
    for (uint32_t i = 0; i < count && i < 8 * 32; i++) {
        if (features[2 + 4 * (i / 32) + 2] & (1u << (i % 32))) {
            char f[ETH_GSTRING_LEN_ + 1];
            memcpy(f, (char *)&strings[3] + i * ETH_GSTRING_LEN_, ETH_GSTRING_LEN_);
            f[ETH_GSTRING_LEN_] = 0;
            printf(" %s", f);
        }
    }
    printf("\n");
    fflush(stdout);
}

static uint16_t icmp_checksum(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint32_t sum = 0;
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return htons((uint16_t)~sum);
}

/* An ICMP echo request to IP and its reply, over a raw socket (the guest's program runs as root). */
static void ping(const char *step, const char *ip)
{
    long start = now_ms();
    struct sockaddr_in a = {.sin_family = AF_INET};
    if (!inet_aton(ip, &a.sin_addr)) {
        fail(step, "bad address %s", ip);
        return;
    }
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (s < 0) {
        fail(step, "raw socket: %s", strerror(errno));
        return;
    }
    uint16_t id = (uint16_t)getpid();
    for (uint16_t seq = 1; seq <= 10; seq++) {
        unsigned char req[64] = {0};
        struct icmphdr *h = (struct icmphdr *)req;
        h->type = ICMP_ECHO;
        h->un.echo.id = htons(id);
        h->un.echo.sequence = htons(seq);
        memcpy(req + sizeof *h, "krun-netcheck-ping", 18);
        h->checksum = icmp_checksum(req, sizeof req);
        if (sendto(s, req, sizeof req, 0, (struct sockaddr *)&a, sizeof a) < 0) {
            fail(step, "sendto: %s", strerror(errno));
            close(s);
            return;
        }
        long until = now_ms() + 1000;
        for (long left; (left = until - now_ms()) > 0;) {
            struct pollfd p = {.fd = s, .events = POLLIN};
            if (poll(&p, 1, (int)left) != 1)
                break;
            unsigned char buf[1500];
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            if (n < 20)
                continue;
            size_t ihl = (size_t)(buf[0] & 15) * 4;
            struct icmphdr *r = (struct icmphdr *)(buf + ihl);
            if ((size_t)n >= ihl + sizeof *r + 18 && from.sin_addr.s_addr == a.sin_addr.s_addr && r->type == ICMP_ECHOREPLY
                && ntohs(r->un.echo.id) == id && !memcmp(buf + ihl + sizeof *r, "krun-netcheck-ping", 18)) {
                close(s);
                printf("%s ok %ld seq %u\n", step, now_ms() - start, seq);
                fflush(stdout);
                return;
            }
        }
    }
    close(s);
    fail(step, "no reply in %s", "10 tries");
}

/* NAME's IPv4 address by the resolver the guest is configured with, compared with IP. */
static void resolve(const char *step, const char *name, const char *ip)
{
    long start = now_ms();
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_DGRAM}, *res = NULL;
    int r = getaddrinfo(name, NULL, &hints, &res);
    if (r) {
        fail(step, "getaddrinfo: %s", gai_strerror(r));
        return;
    }
    char got[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, got, sizeof got);
    freeaddrinfo(res);
    if (strcmp(got, ip)) {
        fail(step, "resolved to %s", got);
        return;
    }
    printf("%s ok %ld %s\n", step, now_ms() - start, got);
    fflush(stdout);
}

static int iface(const char *step, const char *mac)
{
    DIR *d = opendir("/sys/class/net");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        char path[300], buf[64];
        if (e->d_name[0] == '.' || strlen(e->d_name) >= IF_NAMESIZE)
            continue;
        snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n < 17 || strncasecmp(buf, mac, 17))
            continue;
        int s = socket(AF_INET, SOCK_DGRAM, 0);
        struct ifreq ifr;
        memset(&ifr, 0, sizeof ifr);
        memcpy(ifr.ifr_name, e->d_name, strlen(e->d_name) + 1);
        int up = ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && (ifr.ifr_flags & IFF_UP);
        char address[32] = "none";
        int prefix = 0;
        if (ioctl(s, SIOCGIFADDR, &ifr) == 0) {
            snprintf(address, sizeof address, "%s", inet_ntoa(((struct sockaddr_in *)&ifr.ifr_addr)->sin_addr));
            if (ioctl(s, SIOCGIFNETMASK, &ifr) == 0)
                prefix = __builtin_popcount(((struct sockaddr_in *)&ifr.ifr_netmask)->sin_addr.s_addr);
        }
        int mtu = ioctl(s, SIOCGIFMTU, &ifr) == 0 ? ifr.ifr_mtu : 0;
        close(s);
        printf("iface %s %s %s %s/%d %d\n", e->d_name, mac, up ? "up" : "down", address, prefix, mtu);
        fflush(stdout);
        closedir(d);
        return 0;
    }
    if (d)
        closedir(d);
    fail(step, "no interface has address %s", mac);
    return -1;
}

static void route(void)
{
    FILE *f = fopen("/proc/net/route", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        char dev[32];
        unsigned dst, gw;
        if (sscanf(line, "%31s %x %x", dev, &dst, &gw) == 3 && dst == 0) {
            struct in_addr a = {gw};
            printf("route %s %s\n", inet_ntoa(a), dev);
            fflush(stdout);
            fclose(f);
            return;
        }
    }
    if (f)
        fclose(f);
    printf("route none\n");
    fflush(stdout);
}

/* The kernel's counters of the cards: "dev NAME rx-bytes rx-packets rx-errs rx-drop tx-bytes tx-packets ..." */
static void dev(void)
{
    FILE *f = fopen("/proc/net/dev", "r");
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (strncmp(p, "eth", 3))
            continue;
        char *colon = strchr(p, ':');
        if (!colon)
            continue;
        *colon = 0;
        unsigned long long v[16] = {0};
        sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
               &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]);
        printf("dev %s rx %llu bytes %llu packets %llu errs %llu drop, tx %llu bytes %llu packets %llu errs %llu drop\n",
               p, v[0], v[1], v[2], v[3], v[8], v[9], v[10], v[11]);
    }
    if (f)
        fclose(f);
    fflush(stdout);
}

/* The kernel's messages about the cards (/dev/kmsg): "kmsg LINE" for each that names virtio or eth. */
static void kmsg(void)
{
    int fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
    char line[1024];
    ssize_t n;
    while (fd >= 0 && (n = read(fd, line, sizeof line - 1)) > 0) {
        line[n] = 0;
        char *text = strchr(line, ';');
        text = text ? text + 1 : line;
        if (strstr(text, "virtio") || strstr(text, "eth") || strstr(text, "TXQ"))
            printf("kmsg %s", text);
    }
    if (fd >= 0)
        close(fd);
    fflush(stdout);
}

static int tcp_connect(const char *step, const char *ip, int port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!inet_aton(ip, &a.sin_addr)) {
        fail(step, "bad address %s", ip);
        return -1;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    /* a step that stalls fails after 60 s (connect included) instead of hanging the guest */
    struct timeval limit = {60, 0};
    setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &limit, sizeof limit);
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
    long started = now_ms();
    if (s < 0 || connect(s, (struct sockaddr *)&a, sizeof a)) {
        fail(step, "connect: %s", strerror(errno));
        if (s >= 0)
            close(s);
        return -1;
    }
    printf("%s connected %ld\n", step, now_ms() - started);
    fflush(stdout);
    return s;
}

static void put(const char *step, const char *ip, int port, long bytes)
{
    long start = now_ms();
    int s = tcp_connect(step, ip, port);
    if (s < 0)
        return;
    static unsigned char buf[CHUNK];
    uint64_t state = 42, sum = 0xcbf29ce484222325ULL;
    for (long done = 0; done < bytes;) {
        size_t n = (size_t)(bytes - done < CHUNK ? bytes - done : CHUNK);
        pattern(buf, n, &state);
        sum = fnv(sum, buf, n);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(s, buf + off, n - off);
            if (w <= 0) {
                fail(step, "write: %s", strerror(errno));
                close(s);
                return;
            }
            off += (size_t)w;
        }
        done += (long)n;
    }
    shutdown(s, SHUT_WR);
    char answer[64];
    size_t got = 0;
    ssize_t r;
    while (got < sizeof answer - 1 && (r = read(s, answer + got, sizeof answer - 1 - got)) > 0)
        got += (size_t)r;
    answer[got] = 0;
    close(s);
    char ours[17];
    snprintf(ours, sizeof ours, "%016llx", (unsigned long long)sum);
    if (strcmp(answer, ours)) {
        fail(step, "the host's checksum %s differs from ours", answer);
        return;
    }
    printf("%s ok %ld %s\n", step, now_ms() - start, ours);
    fflush(stdout);
}

/* Bytes that arrive compared with the test pattern, made in step with them. */
struct expected {
    unsigned char want[CHUNK];
    uint64_t state;
    size_t made, used;
    long total;
    int bad;
};

static void expect_init(struct expected *e)
{
    e->state = 42;
    e->made = e->used = 0;
    e->total = 0;
    e->bad = 0;
}

static void expect_next(struct expected *e, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (e->used == e->made) {
            pattern(e->want, CHUNK, &e->state);
            e->made = CHUNK;
            e->used = 0;
        }
        e->bad |= p[i] != e->want[e->used++];
    }
    e->total += (long)n;
}

static void get(const char *step, const char *ip, int port, long bytes)
{
    long start = now_ms();
    int s = tcp_connect(step, ip, port);
    if (s < 0)
        return;
    static unsigned char buf[CHUNK];
    static struct expected e;
    expect_init(&e);
    uint64_t sum = 0xcbf29ce484222325ULL;
    ssize_t n;
    while ((n = read(s, buf, sizeof buf)) > 0) {
        expect_next(&e, buf, (size_t)n);
        sum = fnv(sum, buf, (size_t)n);
    }
    long total = e.total;
    int bad = e.bad;
    close(s);
    if (n < 0) {
        fail(step, "read: %s", strerror(errno));
    } else if (total != bytes || bad) {
        char detail[64];
        snprintf(detail, sizeof detail, "%ld bytes, %s", total, bad ? "not the pattern" : "the pattern");
        fail(step, "got %s", detail);
    } else {
        printf("%s ok %ld %016llx\n", step, now_ms() - start, (unsigned long long)sum);
        fflush(stdout);
    }
}

/* An HTTP/1.0 GET of /pattern from IP:PORT: the status, the length and every byte of the body are checked. */
static void http(const char *step, const char *ip, int port, long bytes)
{
    long start = now_ms();
    int s = tcp_connect(step, ip, port);
    if (s < 0)
        return;
    char request[128];
    int len = snprintf(request, sizeof request, "GET /pattern HTTP/1.0\r\nHost: %s:%d\r\n\r\n", ip, port);
    if (write(s, request, (size_t)len) != len) {
        fail(step, "write: %s", strerror(errno));
        close(s);
        return;
    }
    static char head[4096];
    size_t have = 0;
    char *end = NULL;
    ssize_t n;
    while (!end && have < sizeof head - 1 && (n = read(s, head + have, sizeof head - 1 - have)) > 0) {
        have += (size_t)n;
        head[have] = 0;
        end = strstr(head, "\r\n\r\n");
    }
    if (!end) {
        fail(step, "no end of the response's header in %s", have ? "its first 4 KiB" : "an empty answer");
        close(s);
        return;
    }
    long length = -1;
    for (char *line = strstr(head, "\r\n"); line && line < end; line = strstr(line + 2, "\r\n"))
        if (!strncasecmp(line + 2, "Content-Length:", 15))
            length = atol(line + 17);
    if (strncmp(head, "HTTP/1.", 7) || strncmp(head + 8, " 200", 4) || length != bytes) {
        char detail[200];
        *strstr(head, "\r\n") = 0;
        snprintf(detail, sizeof detail, "'%.120s', Content-Length %ld", head, length);
        fail(step, "answered %s", detail);
        close(s);
        return;
    }
    static struct expected e;
    expect_init(&e);
    uint64_t sum = 0xcbf29ce484222325ULL;
    unsigned char *body = (unsigned char *)end + 4; /* what came with the header */
    size_t inHead = have - (size_t)(end + 4 - head);
    expect_next(&e, body, inHead);
    sum = fnv(sum, body, inHead);
    static unsigned char buf[CHUNK];
    while ((n = read(s, buf, sizeof buf)) > 0) {
        expect_next(&e, buf, (size_t)n);
        sum = fnv(sum, buf, (size_t)n);
    }
    close(s);
    if (e.total != bytes || e.bad) {
        char detail[64];
        snprintf(detail, sizeof detail, "%ld bytes, %s", e.total, e.bad ? "not the pattern" : "the pattern");
        fail(step, "a body of %s", detail);
        return;
    }
    printf("%s ok %ld %016llx\n", step, now_ms() - start, (unsigned long long)sum);
    fflush(stdout);
}

/*
 * Listens on PORT and, once a connection's client sent its request line, sends it BYTES of the pattern (the
 * host reaches it through passt's -p). The client speaks first: Debian 12's passt (2023-03-09) does not
 * acknowledge the guest's SYN-ACK of a connection from the host until the host sends data, so the guest's
 * accept() waits for the client's first bytes. A connection the host gave up on before it got its bytes is
 * dropped and the next one served, for 120 s.
 */
static void serve(const char *step, int port, long bytes)
{
    long start = now_ms();
    int l = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (bind(l, (struct sockaddr *)&a, sizeof a) || listen(l, 4)) {
        fail(step, "listen: %s", strerror(errno));
        close(l);
        return;
    }
    static unsigned char buf[CHUNK];
    const char *why = "no connection";
    while (now_ms() - start < 120000) {
        struct pollfd p = {.fd = l, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1)
            continue;
        int s = accept(l, NULL, NULL);
        if (s < 0)
            continue;
        struct timeval limit = {30, 0};
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
        char c = 0;
        while (c != '\n' && read(s, &c, 1) == 1)
            ;
        if (c != '\n') {
            close(s);
            why = "no request line came";
            continue;
        }
        uint64_t state = 42;
        long done = 0;
        while (done < bytes) {
            size_t n = (size_t)(bytes - done < CHUNK ? bytes - done : CHUNK);
            pattern(buf, n, &state);
            size_t off = 0;
            while (off < n) {
                ssize_t w = write(s, buf + off, n - off);
                if (w <= 0)
                    break;
                off += (size_t)w;
            }
            if (off < n)
                break;
            done += (long)n;
        }
        close(s);
        if (done == bytes) {
            close(l);
            printf("%s ok %ld\n", step, now_ms() - start);
            fflush(stdout);
            return;
        }
        why = "connections broke off";
    }
    close(l);
    fail(step, "%s within 120 s", why);
}

static void userve(const char *step, int port, long seconds)
{
    long start = now_ms();
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a)) {
        fail(step, "bind: %s", strerror(errno));
        if (s >= 0)
            close(s);
        return;
    }
    while (now_ms() - start < seconds * 1000) {
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 1000) != 1)
            continue;
        char buf[512];
        struct sockaddr_in from;
        socklen_t len = sizeof from;
        ssize_t n = recvfrom(s, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
        if (n < 0)
            continue;
        if (sendto(s, buf, (size_t)n, 0, (struct sockaddr *)&from, len) != n) {
            fail(step, "sendto: %s", strerror(errno));
            close(s);
            return;
        }
        close(s);
        printf("%s ok %ld from %s\n", step, now_ms() - start, inet_ntoa(from.sin_addr));
        fflush(stdout);
        return;
    }
    close(s);
    fail(step, "no datagram within %s", "the time given");
}

static void udp(const char *step, const char *ip, int port, const char *text)
{
    long start = now_ms();
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (!inet_aton(ip, &a.sin_addr)) {
        fail(step, "bad address %s", ip);
        return;
    }
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    for (int attempt = 0; attempt < 5; attempt++) {
        if (sendto(s, text, strlen(text), 0, (struct sockaddr *)&a, sizeof a) < 0) {
            fail(step, "sendto: %s", strerror(errno));
            close(s);
            return;
        }
        struct pollfd p = {.fd = s, .events = POLLIN};
        if (poll(&p, 1, 2000) == 1) {
            char buf[512];
            ssize_t n = recv(s, buf, sizeof buf - 1, 0);
            if (n >= 0) {
                buf[n] = 0;
                close(s);
                if (strcmp(buf, text)) {
                    fail(step, "the echo was '%s'", buf);
                } else {
                    printf("%s ok %ld\n", step, now_ms() - start);
                    fflush(stdout);
                }
                return;
            }
        }
    }
    close(s);
    fail(step, "no echo in %s", "5 tries");
}

/* The whole value of /proc/sys/KEY, trailing newline dropped, into out; -1 if it cannot be read. */
static int read_sysctl(const char *path, char *out, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    while (n > 0 && out[n - 1] == '\n')
        n--;
    out[n] = 0;
    return 0;
}

static void sysctl(const char *step, const char *arg)
{
    char key[128], path[160], old[64], now[64];
    const char *eq = strchr(arg, '=');
    if (!eq)
        eq = arg + strlen(arg);
    if (eq == arg || (size_t)(eq - arg) >= sizeof key) {
        fail(step, "is not sysctl:KEY[=VALUE]%s", "");
        return;
    }
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = 0;
    snprintf(path, sizeof path, "/proc/sys/%s", key);
    for (char *c = path + 10; *c; c++)
        if (*c == '.')
            *c = '/';
    if (read_sysctl(path, old, sizeof old)) {
        fail(step, "cannot read it: %s", strerror(errno));
        return;
    }
    if (!*eq) {
        printf("sysctl %s %s\n", key, old);
        fflush(stdout);
        return;
    }
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    size_t len = strlen(eq + 1);
    if (fd < 0 || write(fd, eq + 1, len) != (ssize_t)len) {
        fail(step, "cannot write it: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
        return;
    }
    close(fd);
    if (read_sysctl(path, now, sizeof now)) {
        fail(step, "cannot read it again: %s", strerror(errno));
        return;
    }
    printf("sysctl %s %s -> %s\n", key, old, now);
    fflush(stdout);
}

static void cpu(void)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long user, nice, system, idle, iowait, irq, softirq;
    if (!f || fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system, &idle, &iowait, &irq, &softirq) != 7) {
        fail("cpu", "cannot read %s", "/proc/stat");
    } else {
        printf("cpu user %llu system %llu idle %llu irq %llu softirq %llu\n", user + nice, system, idle + iowait, irq, softirq);
        fflush(stdout);
    }
    if (f)
        fclose(f);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN); /* a peer that goes away is a failed step, not the end of the program */
    for (int i = 1; i < argc; i++) {
        char *step = argv[i];
        char copy[256];
        snprintf(copy, sizeof copy, "%s", step);
        char *kind = strtok(copy, ":");
        if (!kind) {
            continue;
        } else if (!strcmp(kind, "iface")) {
            iface(step, step + 6);
        } else if (!strcmp(kind, "route")) {
            route();
        } else if (!strcmp(kind, "dev")) {
            dev();
        } else if (!strcmp(kind, "kmsg")) {
            kmsg();
        } else if (!strcmp(kind, "cpu")) {
            cpu();
        } else if (!strcmp(kind, "sysctl")) {
            sysctl(step, step + 7);
        } else if (!strcmp(kind, "ping")) {
            ping(step, step + 5);
        } else if (!strcmp(kind, "resolve")) {
            char *name = strtok(NULL, ":"), *ip = strtok(NULL, "");
            if (!name || !ip)
                fail(step, "is not %s:NAME:IP", kind);
            else
                resolve(step, name, ip);
        } else if (!strcmp(kind, "offload")) {
            offload(step, step + 8);
        } else if (!strcmp(kind, "serve") || !strcmp(kind, "userve")) {
            char *port = strtok(NULL, ":"), *arg = strtok(NULL, "");
            if (!port || !arg)
                fail(step, "is not %s:PORT:NUMBER", kind);
            else if (!strcmp(kind, "serve"))
                serve(step, atoi(port), atol(arg));
            else
                userve(step, atoi(port), atol(arg));
        } else {
            char *ip = strtok(NULL, ":"), *port = strtok(NULL, ":"), *arg = strtok(NULL, "");
            if (!ip || !port || !arg) {
                fail(step, "is not %s:IP:PORT:ARG", kind);
            } else if (!strcmp(kind, "put")) {
                put(step, ip, atoi(port), atol(arg));
            } else if (!strcmp(kind, "get")) {
                get(step, ip, atoi(port), atol(arg));
            } else if (!strcmp(kind, "http")) {
                http(step, ip, atoi(port), atol(arg));
            } else if (!strcmp(kind, "udp")) {
                udp(step, ip, atoi(port), arg);
            } else {
                fail(step, "unknown step %s", kind);
            }
        }
    }
    return failures;
}
