/*
 * blkcheck: runs inside a krun guest for org.krun.device.blk's Linux tests. One process performs a list of
 * steps given as arguments (each process and busybox command costs seconds on kvm-pvm hosts) and prints one
 * "key=value" line per result; the host test judges them. A failing step prints "KEY=error:..." and carries
 * on, so one boot reports everything it can.
 *
 *   blkcheck STEP:ARG[:ARG...] ...
 *
 *   info:DEV                 size (sectors), serial, ro, discard/write-zeroes limits, cache type from sysfs
 *   readonly:DEV             a read-only disk refuses writes; BLKROGET; hash of its first MiB
 *   mkfs:DEV                 runs /sbin/mke2fs -t ext4 on it (discards and zeroes through the device)
 *   mount:DEV:DIR[:OPTS]     mount -t ext4
 *   umount:DIR
 *   writefiles:DIR           small.txt, pattern.bin (1 MiB of pattern seed 1), sub/nested.txt; each fsynced
 *   readfiles:DIR            hashes of hello.txt and big.bin, made on the host
 *   trim:DIR:FILE            deletes FILE, syncs, FITRIM over the file system; bytes trimmed
 *   pattern:DEV              direct writes of pattern seed 2 at several offsets, BLKDISCARD, BLKZEROOUT,
 *                            read back and compared; then 8 threads of direct reads at once, compared
 *   kernelerrors             I/O and ext4 errors in the kernel log
 *   mounts                   source, type and first option of / and of every mount under /mnt
 *   patternhash:SEED:LEN     hash of pattern SEED over [0, LEN) (pins the host's copy, run on the host)
 *
 * The pattern and the hash are the same functions as GuestPatterns on the host.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/klog.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* linux/fs.h, which musl's headers do not carry (sys/mount.h has BLKROGET) */
#ifndef BLKDISCARD
#define BLKDISCARD _IO(0x12, 119)
#endif
#ifndef BLKZEROOUT
#define BLKZEROOUT _IO(0x12, 127)
#endif
#define FITRIM 0xc0185879 /* _IOWR('X', 121, struct fstrim_range) */

struct fstrim_range {
    uint64_t start, len, minlen;
};

/* ---- the host's GuestPatterns, in C */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* The byte of pattern `seed` at absolute disk (or file) offset `off`. */
static unsigned char pattern_byte(uint64_t seed, uint64_t off)
{
    return (unsigned char)(splitmix64(seed * 0x100000001b3ULL ^ (off >> 3)) >> (8 * (off & 7)));
}

static void fill_pattern(unsigned char *buf, size_t len, uint64_t seed, uint64_t off)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = pattern_byte(seed, off + i);
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

#define FNV_BASIS 0xcbf29ce484222325ULL

/* ---- output */

static void put(const char *key, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(const char *key, const char *fmt, ...)
{
    va_list ap;
    printf("%s=", key);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
}

static void put_error(const char *key, const char *what)
{
    put(key, "error:%s:%s", what, strerror(errno));
}

static char *key(const char *a, const char *b)
{
    static char buf[8][320];
    static int n;
    char *k = buf[n++ % 8];
    snprintf(k, sizeof buf[0], "%s.%s", a, b);
    return k;
}

static int read_sysfs(const char *path, char *out, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, out, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    out[n] = 0;
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = 0;
    return 0;
}

/* ---- steps */

static void step_info(const char *dev)
{
    static const char *attrs[][2] = {
        {"size", "/sys/block/%s/size"},
        {"serial", "/sys/block/%s/serial"},
        {"ro", "/sys/block/%s/ro"},
        {"discard_max", "/sys/block/%s/queue/discard_max_bytes"},
        {"discard_granularity", "/sys/block/%s/queue/discard_granularity"},
        {"write_zeroes_max", "/sys/block/%s/queue/write_zeroes_max_bytes"},
        {"logical_block", "/sys/block/%s/queue/logical_block_size"},
        {"max_segments", "/sys/block/%s/queue/max_segments"},
        {"cache_type", "/sys/block/%s/cache_type"},
    };
    for (size_t i = 0; i < sizeof attrs / sizeof attrs[0]; i++) {
        char path[128], value[256];
        snprintf(path, sizeof path, attrs[i][1], dev);
        if (read_sysfs(path, value, sizeof value))
            put_error(key(dev, attrs[i][0]), path);
        else
            put(key(dev, attrs[i][0]), "%s", value);
    }
}

static int open_dev(const char *dev, int flags)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/%s", dev);
    return open(path, flags | O_CLOEXEC);
}

static const char *errno_name(int e)
{
    switch (e) {
    case EPERM: return "EPERM";
    case EROFS: return "EROFS";
    case EACCES: return "EACCES";
    case EIO: return "EIO";
    default: return strerror(e);
    }
}

static void step_readonly(const char *dev)
{
    /* Linux may let a read-only disk be opened for writing; the write itself must fail. */
    int fd = open_dev(dev, O_RDWR);
    if (fd >= 0) {
        static unsigned char zeros[4096];
        if (pwrite(fd, zeros, sizeof zeros, 0) >= 0)
            put(key(dev, "write"), "succeeded");
        else
            put(key(dev, "write"), "%s", errno_name(errno));
        close(fd);
    } else {
        put(key(dev, "write"), "%s", errno_name(errno));
    }
    fd = open_dev(dev, O_RDONLY);
    if (fd < 0) {
        put_error(key(dev, "open_ro"), "open");
        return;
    }
    int ro = -1;
    if (ioctl(fd, BLKROGET, &ro))
        put_error(key(dev, "blkroget"), "BLKROGET");
    else
        put(key(dev, "blkroget"), "%d", ro);
    static unsigned char buf[1 << 20];
    ssize_t n = pread(fd, buf, sizeof buf, 0);
    if (n != (ssize_t)sizeof buf)
        put_error(key(dev, "hash"), "pread");
    else
        put(key(dev, "hash"), "%016llx", (unsigned long long)fnv1a(FNV_BASIS, buf, sizeof buf));
    close(fd);
}

static int run(char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    int status;
    if (waitpid(pid, &status, 0) < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void step_mkfs(const char *dev)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/%s", dev);
    char *argv[] = {"/sbin/mke2fs", "-q", "-F", "-t", "ext4", "-L", "guestmade", path, NULL};
    put(key(dev, "mkfs"), "%d", run(argv));
}

static void mkdirs(const char *dir)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dir);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
}

static void step_mount(const char *dev, const char *dir, const char *opts)
{
    char path[64];
    snprintf(path, sizeof path, "/dev/%s", dev);
    mkdirs(dir);
    if (mount(path, dir, "ext4", 0, opts))
        put_error(key(dev, "mount"), dir);
    else
        put(key(dev, "mount"), "ok");
}

static void step_umount(const char *dir)
{
    if (umount(dir))
        put_error(key("umount", dir), "umount");
    else
        put(key("umount", dir), "ok");
}

static int write_file(const char *path, const unsigned char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += n;
    }
    if (fsync(fd)) {
        close(fd);
        return -1;
    }
    return close(fd);
}

static void step_writefiles(const char *dir)
{
    char path[256];
    static unsigned char big[1 << 20];
    int written = 0;
    const char *small = "hello from the guest\n";
    snprintf(path, sizeof path, "%s/small.txt", dir);
    if (write_file(path, (const unsigned char *)small, strlen(small)) == 0)
        written++;
    else
        put_error("writefiles.small", path);
    fill_pattern(big, sizeof big, 1, 0);
    snprintf(path, sizeof path, "%s/pattern.bin", dir);
    if (write_file(path, big, sizeof big) == 0)
        written++;
    else
        put_error("writefiles.pattern", path);
    snprintf(path, sizeof path, "%s/sub", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/sub/nested.txt", dir);
    if (write_file(path, (const unsigned char *)"nested\n", 7) == 0)
        written++;
    else
        put_error("writefiles.nested", path);
    sync();
    put("writefiles", "%d", written);
}

static void hash_file(const char *k, const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        put_error(k, path);
        return;
    }
    static unsigned char buf[1 << 16];
    uint64_t h = FNV_BASIS;
    long long total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        h = fnv1a(h, buf, n);
        total += n;
    }
    close(fd);
    if (n < 0)
        put_error(k, "read");
    else
        put(k, "%016llx:%lld", (unsigned long long)h, total);
}

static void step_readfiles(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/hello.txt", dir);
    hash_file("readfiles.hello", path);
    snprintf(path, sizeof path, "%s/big.bin", dir);
    hash_file("readfiles.big", path);
}

static void step_trim(const char *dir, const char *file)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (unlink(path))
        put_error("trim.unlink", path);
    sync();
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    struct fstrim_range range = {0, UINT64_MAX, 0};
    if (fd < 0 || ioctl(fd, FITRIM, &range))
        put_error("trim", "FITRIM");
    else
        put("trim", "%llu", (unsigned long long)range.len);
    if (fd >= 0)
        close(fd);
}

/* The pattern step's layout: what the host checks after the VM has stopped (GuestPatterns.PATTERN_*). */
#define CHUNK (64 << 10)
static const uint64_t pattern_offsets[] = {0, (1 << 20) + 4096, 10 << 20, (3 << 20), (64 << 20) - CHUNK};
#define DISCARD_AT (3 << 20)
#define DISCARD_LEN (1 << 20)
#define ZERO_AT ((10 << 20) + 4096)
#define ZERO_LEN 8192

struct reader {
    int fd;
    int id;
    int bad;
};

static int expected(uint64_t off, unsigned char *buf, size_t len)
{
    /* what the disk must hold at [off, off+len) after the pattern step's writes, discard and zeroing */
    memset(buf, 0, len);
    for (size_t p = 0; p < sizeof pattern_offsets / sizeof pattern_offsets[0]; p++) {
        uint64_t a = pattern_offsets[p], b = a + CHUNK;
        for (uint64_t o = a > off ? a : off; o < b && o < off + len; o++)
            buf[o - off] = pattern_byte(2, o);
    }
    for (uint64_t o = DISCARD_AT; o < DISCARD_AT + DISCARD_LEN; o++)
        if (o >= off && o < off + len)
            buf[o - off] = 0; /* discarded whole qcow2 clusters read as zeroes */
    for (uint64_t o = ZERO_AT; o < ZERO_AT + ZERO_LEN; o++)
        if (o >= off && o < off + len)
            buf[o - off] = 0;
    return 0;
}

static void *parallel_reader(void *arg)
{
    struct reader *r = arg;
    unsigned char *buf, *want = malloc(4096);
    if (posix_memalign((void **)&buf, 4096, 4096) || !want) {
        r->bad = -1;
        return NULL;
    }
    for (int i = 0; i < 32; i++) {
        uint64_t off = (splitmix64(r->id * 1000 + i) % ((12 << 20) / 4096)) * 4096;
        if (pread(r->fd, buf, 4096, off) != 4096) {
            r->bad++;
            continue;
        }
        expected(off, want, 4096);
        if (memcmp(buf, want, 4096))
            r->bad++;
    }
    free(buf);
    free(want);
    return NULL;
}

static void step_pattern(const char *dev)
{
    int fd = open_dev(dev, O_RDWR | O_DIRECT);
    if (fd < 0) {
        put_error(key(dev, "pattern"), "open");
        return;
    }
    unsigned char *buf, *want;
    if (posix_memalign((void **)&buf, 4096, CHUNK) || posix_memalign((void **)&want, 4096, CHUNK)) {
        put_error(key(dev, "pattern"), "memory");
        return;
    }
    for (size_t p = 0; p < sizeof pattern_offsets / sizeof pattern_offsets[0]; p++) {
        fill_pattern(buf, CHUNK, 2, pattern_offsets[p]);
        if (pwrite(fd, buf, CHUNK, pattern_offsets[p]) != CHUNK) {
            put_error(key(dev, "pattern"), "pwrite");
            return;
        }
    }
    if (fdatasync(fd)) {
        put_error(key(dev, "pattern"), "fdatasync");
        return;
    }
    uint64_t discard[2] = {DISCARD_AT, DISCARD_LEN};
    if (ioctl(fd, BLKDISCARD, discard))
        put_error(key(dev, "discard"), "BLKDISCARD");
    else
        put(key(dev, "discard"), "ok");
    uint64_t zero[2] = {ZERO_AT, ZERO_LEN};
    if (ioctl(fd, BLKZEROOUT, zero))
        put_error(key(dev, "zeroout"), "BLKZEROOUT");
    else
        put(key(dev, "zeroout"), "ok");
    fsync(fd);
    int bad = 0;
    for (uint64_t off = 0; off < (12 << 20); off += CHUNK) {
        if (pread(fd, buf, CHUNK, off) != CHUNK || (expected(off, want, CHUNK), memcmp(buf, want, CHUNK)))
            bad++;
    }
    uint64_t last = pattern_offsets[4];
    if (pread(fd, buf, CHUNK, last) != CHUNK || (expected(last, want, CHUNK), memcmp(buf, want, CHUNK)))
        bad++;
    put(key(dev, "readback_bad_chunks"), "%d", bad);

    pthread_t threads[8];
    struct reader readers[8];
    for (int t = 0; t < 8; t++) {
        readers[t] = (struct reader){fd, t, 0};
        pthread_create(&threads[t], NULL, parallel_reader, &readers[t]);
    }
    int parallel_bad = 0;
    for (int t = 0; t < 8; t++) {
        pthread_join(threads[t], NULL);
        parallel_bad += readers[t].bad;
    }
    put(key(dev, "parallel_bad_reads"), "%d", parallel_bad);
    close(fd);
    free(buf);
    free(want);
}

static void step_kernelerrors(void)
{
    int size = klogctl(10, NULL, 0); /* SYSLOG_ACTION_SIZE_BUFFER */
    if (size <= 0) {
        put_error("kernel.errors", "klogctl");
        return;
    }
    char *log = malloc(size + 1);
    int n = klogctl(3, log, size); /* SYSLOG_ACTION_READ_ALL */
    if (n < 0) {
        put_error("kernel.errors", "klogctl");
        return;
    }
    log[n] = 0;
    int errors = 0;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "I/O error") || strstr(line, "EXT4-fs error") || strstr(line, "critical medium error")
                || strstr(line, "blk_update_request")) {
            errors++;
            put("kernel.error_line", "%s", line);
        }
    }
    put("kernel.errors", "%d", errors);
    free(log);
}

static void step_mounts(void)
{
    FILE *f = fopen("/proc/mounts", "re");
    char source[256], target[256], type[64], options[512];
    if (!f) {
        put_error("mounts", "/proc/mounts");
        return;
    }
    while (fscanf(f, "%255s %255s %63s %511s %*d %*d", source, target, type, options) == 4) {
        if (!strcmp(target, "/") || !strncmp(target, "/mnt", 4)) {
            char *comma = strchr(options, ',');
            if (comma)
                *comma = 0;
            put(key("mount", target), "%s %s %s", source, type, options);
        }
    }
    fclose(f);
}

static void step_patternhash(const char *seed, const char *len)
{
    size_t n = strtoul(len, NULL, 0);
    unsigned char *buf = malloc(n ? n : 1);
    fill_pattern(buf, n, strtoull(seed, NULL, 0), 0);
    put("patternhash", "%016llx:%zu", (unsigned long long)fnv1a(FNV_BASIS, buf, n), n);
    free(buf);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        char *args[5] = {0};
        int n = 0;
        char *save;
        for (char *t = strtok_r(argv[i], ":", &save); t && n < 5; t = strtok_r(NULL, ":", &save))
            args[n++] = t;
        if (n == 0)
            continue;
        if (!strcmp(args[0], "info") && n == 2)
            step_info(args[1]);
        else if (!strcmp(args[0], "readonly") && n == 2)
            step_readonly(args[1]);
        else if (!strcmp(args[0], "mkfs") && n == 2)
            step_mkfs(args[1]);
        else if (!strcmp(args[0], "mount") && n >= 3)
            step_mount(args[1], args[2], n > 3 ? args[3] : "");
        else if (!strcmp(args[0], "umount") && n == 2)
            step_umount(args[1]);
        else if (!strcmp(args[0], "writefiles") && n == 2)
            step_writefiles(args[1]);
        else if (!strcmp(args[0], "readfiles") && n == 2)
            step_readfiles(args[1]);
        else if (!strcmp(args[0], "trim") && n == 3)
            step_trim(args[1], args[2]);
        else if (!strcmp(args[0], "pattern") && n == 2)
            step_pattern(args[1]);
        else if (!strcmp(args[0], "mounts"))
            step_mounts();
        else if (!strcmp(args[0], "patternhash") && n == 3)
            step_patternhash(args[1], args[2]);
        else if (!strcmp(args[0], "kernelerrors"))
            step_kernelerrors();
        else
            put("usage", "unknown step %s", args[0]);
    }
    put("blkcheck", "done");
    return 0;
}
