/*
 * vsockcheck: vsock port maps from inside the guest, one process doing every step (a shell script costs
 * seconds per command on kvm-pvm hosts). Steps, in the order given on the command line:
 *   send:PORT:BYTES   connect to the host (CID 2) at PORT, send BYTES of the test pattern, shut down the
 *                     sending side, read the host's answer (its 16-hex-digit checksum of what it got) until
 *                     the host closes, and compare it with ours
 *   recv:PORT:BYTES:READY   listen on PORT, tell the host by connecting to its port READY (and closing),
 *                     accept one connection, read until the host closes, expect BYTES of the test pattern
 * Prints one line per step: "send PORT BYTES ok MS" or "recv PORT BYTES ok MS", or "... FAIL reason"; exits
 * with the number of failed steps.
 *
 * The pattern is xorshift64 from seed 42, eight bytes little-endian at a time; the checksum is 64-bit
 * FNV-1a over the bytes (the Java side computes both the same way).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

/* linux/vm_sockets.h, which musl does not carry */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffU
#define VMADDR_CID_HOST 2U
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[3];
};

static uint64_t rng = 42;

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

/*
 * linux/vm_sockets.h SO_VM_SOCKETS_CONNECT_TIMEOUT (SOL is AF_VSOCK): vsock's 2 s default for the host's
 * answer to a connect runs out on a loaded kvm-pvm host, where the guest's vCPU waits for a host CPU.
 */
#define SO_VM_SOCKETS_CONNECT_TIMEOUT 6

static int vsock_socket(void)
{
    int fd = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct timeval tv = {.tv_sec = 30};
    if (fd >= 0)
        setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &tv, sizeof tv);
    return fd;
}

static long ms_since(struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0->tv_sec) * 1000 + (t1.tv_nsec - t0->tv_nsec) / 1000000;
}

static int step_send(unsigned port, unsigned long long bytes)
{
    static unsigned char buf[CHUNK];
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int fd = vsock_socket();
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = port};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a)) {
        printf("send %u %llu FAIL connect: %s\n", port, bytes, strerror(errno));
        return 1;
    }
    uint64_t state = rng, sum = 0xcbf29ce484222325ULL;
    for (unsigned long long done = 0; done < bytes;) {
        size_t n = bytes - done < CHUNK ? bytes - done : CHUNK;
        pattern(buf, n, &state);
        sum = fnv(sum, buf, n);
        for (size_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, n - off);
            if (w <= 0) {
                printf("send %u %llu FAIL write at %llu: %s\n", port, bytes, done + off, strerror(errno));
                return 1;
            }
            off += w;
        }
        done += n;
    }
    shutdown(fd, SHUT_WR);
    char answer[64] = {0};
    size_t got = 0;
    for (;;) {
        ssize_t r = read(fd, answer + got, sizeof answer - 1 - got);
        if (r < 0) {
            printf("send %u %llu FAIL reading the answer: %s\n", port, bytes, strerror(errno));
            return 1;
        }
        if (r == 0)
            break; /* the host closed: we see its end of stream */
        got += r;
    }
    close(fd);
    char mine[32];
    snprintf(mine, sizeof mine, "%016llx", (unsigned long long)sum);
    if (strncmp(answer, mine, 16)) {
        printf("send %u %llu FAIL host checksum %s, ours %s\n", port, bytes, answer, mine);
        return 1;
    }
    printf("send %u %llu ok %ld\n", port, bytes, ms_since(&t0));
    return 0;
}

static int step_recv(unsigned port, unsigned long long bytes, unsigned ready)
{
    static unsigned char buf[CHUNK], want[CHUNK];
    int ls = socket(AF_VSOCK, SOCK_STREAM, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (ls < 0 || bind(ls, (struct sockaddr *)&a, sizeof a) || listen(ls, 4)) {
        printf("recv %u %llu FAIL listen: %s\n", port, bytes, strerror(errno));
        return 1;
    }
    int rfd = vsock_socket();
    struct sockaddr_vm r = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_HOST, .svm_port = ready};
    if (rfd < 0 || connect(rfd, (struct sockaddr *)&r, sizeof r)) {
        printf("recv %u %llu FAIL telling the host on %u: %s\n", port, bytes, ready, strerror(errno));
        return 1;
    }
    close(rfd);
    int fd = accept(ls, NULL, NULL);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (fd < 0) {
        printf("recv %u %llu FAIL accept: %s\n", port, bytes, strerror(errno));
        return 1;
    }
    uint64_t state = rng;
    unsigned long long done = 0;
    size_t have = 0, used = 0;
    for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r < 0) {
            printf("recv %u %llu FAIL read at %llu: %s\n", port, bytes, done, strerror(errno));
            return 1;
        }
        if (r == 0)
            break; /* the host closed */
        for (ssize_t i = 0; i < r; i++) {
            if (used == have) {
                pattern(want, CHUNK, &state);
                have = CHUNK;
                used = 0;
            }
            if (buf[i] != want[used++]) {
                printf("recv %u %llu FAIL byte %llu differs\n", port, bytes, done + i);
                return 1;
            }
        }
        done += r;
    }
    close(fd);
    close(ls);
    if (done != bytes) {
        printf("recv %u %llu FAIL got %llu bytes\n", port, bytes, done);
        return 1;
    }
    printf("recv %u %llu ok %ld\n", port, bytes, ms_since(&t0));
    return 0;
}

int main(int argc, char **argv)
{
    int failed = 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (int i = 1; i < argc; i++) {
        unsigned port, ready = 0;
        unsigned long long bytes;
        char op[8];
        if (sscanf(argv[i], "%7[a-z]:%u:%llu:%u", op, &port, &bytes, &ready) < 3) {
            printf("%s FAIL: not OP:PORT:BYTES\n", argv[i]);
            failed++;
        } else if (!strcmp(op, "send")) {
            failed += step_send(port, bytes);
        } else if (!strcmp(op, "recv")) {
            failed += step_recv(port, bytes, ready);
        } else {
            printf("%s FAIL: unknown step\n", argv[i]);
            failed++;
        }
    }
    return failed;
}
