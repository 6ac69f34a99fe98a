/*
 * krun guest init: process 1 of every krun microVM.
 *
 * Sets the guest up (mounts, hostname, console, environment, working directory, resource limits),
 * runs the one command it was given with the console as its standard streams, reaps every child,
 * reports the command's exit status to the VMM and reboots (which stops the VM).
 *
 * Configuration, in order of preference:
 *   1. /krun/config.json, written by the VMM (see parse_config for the schema);
 *   2. with /krun/template instead (a templated VM, docs/templates.md): the same JSON read from I/O port
 *      KRUN_CONFIG_PORT after the template point, where the VMM snapshots the VM for later runs;
 *   3. libkrun's contract: KRUN_INIT (the command), KRUN_WORKDIR, KRUN_RLIMITS from the kernel
 *      command line's environment, and the command's arguments after "--".
 *
 * Exit status contract (as libkrun's): 125 setup failed, 126 command not executable,
 * 127 command not found, 128+n command killed by signal n, else the command's own status.
 * The status is written as one byte to I/O port KRUN_EXIT_PORT through /dev/port. With "signals" in its
 * configuration, each byte the host writes to console port krun-signals is a signal to deliver to the command
 * (an OCI runtime's kill): init waits for them with the command, woken by the port's interrupt.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <grp.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"
#include "net.h"

#define KRUN_EXIT_PORT 0xf4
#define KRUN_INIT_MARKER_PORT 0xf5
#define KRUN_TEMPLATE_PORT 0xf6
#define KRUN_CONFIG_PORT 0xf7
/* The VMM's read-only MMIO window holding the same configuration (X86Layout.CONFIG_WINDOW_BASE). */
#define KRUN_CONFIG_WINDOW 0xd8000000UL
#define KRUN_CONFIG_WINDOW_SIZE (16UL << 20)
#define CONFIG_PATH "/krun/config.json"
#define TEMPLATE_MARKER_PATH "/krun/template"
/* linux/random.h: RNDADDENTROPY is _IOW('R', 0x03, int[2]), RNDRESEEDCRNG _IO('R', 0x07) */
#define KRUN_RNDADDENTROPY 0x40085203
#define KRUN_RNDRESEEDCRNG 0x5207
#define KRUN_BLKRRPART 0x125f /* _IO(0x12, 95): read the partition table again */
#define MAX_ITEMS 4096

struct config {
    char *cmd[MAX_ITEMS + 1];
    int ncmd;
    char *env[MAX_ITEMS + 1];
    int nenv;
    char *rlimits[64];
    int nrlimits;
    char *workdir;
    char *hostname;
    char *user; /* "UID:GID" or "UID:GID:G1,G2,...": the command's credentials; none: root's */
    char *console; /* "terminal" or "pipes" */
    int columns, rows;
    int exit_port;
    int signals; /* signals for the command arrive on console port krun-signals */
    int exec_port; /* the exec agent's vsock port (exec.c); 0: none */
    /* The root to switch to; none means the initramfs is the root. */
    char *root_source, *root_fstype, *root_options;
    /* 1: the root is mounted read-only under a writable tmpfs layer (overlayfs): the guest's writes stay in
     * its own memory and the shared tree stays as it was. */
    int root_overlay;
    /* Extra mounts after the switch, as (source, target, fstype, options) quadruples. */
    char *mounts[4 * 64];
    int nmounts;
    /* Files devices need in the guest, as (path, contents) pairs: contents that replace the file
     * (/etc/resolv.conf), and lines added to it (/etc/hosts). */
    char *files[2 * 32];
    int nfiles;
    char *appends[2 * 32];
    int nappends;
    /* Templated VMs only: the host's wall clock ("SECONDS.NANOS") and fresh host entropy (hex). */
    char *clock;
    char *seed;
    /* Templated VMs only: (virtio-mmio device index, capacity in sectors) for each disk, both decimal. */
    char *disks[2 * 32];
    int ndisks;
};

static struct config cfg;
static int dev_mounted; /* devtmpfs is on the current root's /dev */
/* Which of the system filesystems are mounted on the current root (early_mounts, then moved along to the run's). */
enum { MOUNTED_PROC = 1, MOUNTED_SYS = 2, MOUNTED_PTS = 4, MOUNTED_SHM = 8 };
static int sys_mounted;
static int console_fd = -1; /* where init's own messages go */

static void say(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "krun-init: ");
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    if (write(console_fd >= 0 ? console_fd : 2, buf, n) < 0) {
        /* nowhere else to report */
    }
}

/*
 * Before the VM stops: leave file systems on disks clean, so the host (e2fsck, the next boot) finds them
 * consistent without a journal replay. Extra mounts are unmounted and a disk root is made read-only;
 * best effort: a process still writing keeps its file system busy, and sync() has flushed it anyway.
 */
static void quiesce_filesystems(void)
{
    for (int i = cfg.nmounts - 4; i >= 0; i -= 4)
        umount(cfg.mounts[i + 1]);
    if (cfg.root_fstype)
        mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY, NULL);
}

static void report_and_reboot(int status)
{
    unsigned char b = (unsigned char)status;
    int fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
    sync();
    quiesce_filesystems();
    if (fd < 0 || pwrite(fd, &b, 1, cfg.exit_port) != 1)
        say("cannot report exit status %d: %s", status, strerror(errno));
    if (fd >= 0)
        close(fd);
    reboot(RB_AUTOBOOT);
    /* reboot failed: nothing sensible is left to do but wait to be stopped */
    for (;;)
        pause();
}

/*
 * The kernel starts init without fds 0-2 when no console exists yet. Occupy them with /dev/null, so that
 * descriptors opened later are never 0-2 and the dup2 calls that build the command's stdio cannot clobber
 * each other.
 */
static void reserve_stdio_fds(void)
{
    for (int fd = 0; fd < 3; fd++) {
        if (fcntl(fd, F_GETFD) < 0) {
            int null = open("/dev/null", O_RDWR);
            if (null >= 0 && null != fd) {
                dup2(null, fd);
                close(null);
            }
        }
    }
}

/*
 * The VMM's boot timeline (BootTimeline): one byte to port KRUN_INIT_MARKER_PORT as each step of the init is
 * reached, 1 first. The fd stays open (close-on-exec) for the later steps: every open costs the guest kernel
 * much on hosts that emulate it, and /dev is unmounted when the root is switched.
 */
enum phase { PHASE_INIT = 1, PHASE_ROOT, PHASE_FILES, PHASE_CONSOLE, PHASE_NETWORK, PHASE_EXEC, PHASE_EXITED };
static int marker_fd = -1;

static void mark(enum phase p)
{
    unsigned char b = (unsigned char)p;
    if (marker_fd >= 0 && pwrite(marker_fd, &b, 1, KRUN_INIT_MARKER_PORT) != 1) {
        /* only a diagnostic: carry on */
    }
}

static void mark_init_started(void)
{
    marker_fd = open("/dev/port", O_WRONLY | O_CLOEXEC);
    mark(PHASE_INIT);
}

static int open_hvc0(void);

static void fail_setup(const char *fmt, ...)
{
    char buf[400];
    if (console_fd < 0)
        console_fd = open_hvc0(); /* set-up failed before the console was: find it for this message */
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    say("%s", buf);
    report_and_reboot(125);
}

/* ---- a JSON reader for the config's small schema: an object of strings, string arrays, integers */

struct json {
    const char *p, *end;
};

static void skip_ws(struct json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t'))
        j->p++;
}

static int expect(struct json *j, char c)
{
    skip_ws(j);
    if (j->p < j->end && *j->p == c) {
        j->p++;
        return 0;
    }
    return -1;
}

static void put_utf8(char **o, unsigned cp)
{
    if (cp < 0x80) {
        *(*o)++ = (char)cp;
    } else if (cp < 0x800) {
        *(*o)++ = (char)(0xc0 | (cp >> 6));
        *(*o)++ = (char)(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
        *(*o)++ = (char)(0xe0 | (cp >> 12));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *(*o)++ = (char)(0x80 | (cp & 0x3f));
    } else {
        *(*o)++ = (char)(0xf0 | (cp >> 18));
        *(*o)++ = (char)(0x80 | ((cp >> 12) & 0x3f));
        *(*o)++ = (char)(0x80 | ((cp >> 6) & 0x3f));
        *(*o)++ = (char)(0x80 | (cp & 0x3f));
    }
}

static int hex4(const char *s, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

/* Parses a JSON string into a new NUL-terminated buffer (strings holding \u0000 are refused). */
static char *parse_string(struct json *j)
{
    skip_ws(j);
    if (j->p >= j->end || *j->p != '"')
        return NULL;
    j->p++;
    /* As many bytes as the string's JSON text up to its closing quote (an escape never decodes to more than
     * its text): a malloc the size of the whole rest of the configuration per string touched new heap pages
     * for every one, each a page fault the guest kernel pays much for where its code is emulated. */
    const char *q = j->p;
    while (q < j->end && *q != '"')
        q += *q == '\\' && q + 1 < j->end ? 2 : 1;
    char *out = malloc((size_t)(q - j->p) + 1);
    char *o = out;
    if (!out)
        return NULL;
    while (j->p < j->end && *j->p != '"') {
        char c = *j->p++;
        if (c != '\\') {
            *o++ = c;
            continue;
        }
        if (j->p >= j->end)
            goto bad;
        c = *j->p++;
        switch (c) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned cp, lo;
            if (j->end - j->p < 4 || hex4(j->p, &cp))
                goto bad;
            j->p += 4;
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &lo)
                    || lo < 0xdc00 || lo > 0xdfff)
                    goto bad;
                j->p += 6;
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            }
            if (cp == 0)
                goto bad;
            put_utf8(&o, cp);
            break;
        }
        default:
            goto bad;
        }
    }
    if (j->p >= j->end)
        goto bad;
    j->p++;
    *o = 0;
    return out;
bad:
    free(out);
    return NULL;
}

static int parse_string_array(struct json *j, char **items, int max, int *count)
{
    if (expect(j, '['))
        return -1;
    skip_ws(j);
    if (j->p < j->end && *j->p == ']') {
        j->p++;
        return 0;
    }
    for (;;) {
        char *s = parse_string(j);
        if (!s || *count >= max)
            return -1;
        items[(*count)++] = s;
        skip_ws(j);
        if (j->p < j->end && *j->p == ',') {
            j->p++;
            continue;
        }
        return expect(j, ']');
    }
}

static int parse_int(struct json *j, int *out)
{
    long v = 0;
    int neg = 0, digits = 0;
    skip_ws(j);
    if (j->p < j->end && *j->p == '-') {
        neg = 1;
        j->p++;
    }
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9' && digits < 9) {
        v = v * 10 + (*j->p++ - '0');
        digits++;
    }
    if (!digits)
        return -1;
    *out = (int)(neg ? -v : v);
    return 0;
}

/*
 * Schema: {"cmd": [string...], "env": ["K=V"...], "workdir": string, "hostname": string,
 *          "user": "UID:GID[:GID,...]", "signals": 0|1, "exec_port": int,
 *          "rlimits": ["NAME=SOFT:HARD"...], "console": "terminal"|"pipes",
 *          "columns": int, "rows": int, "exit_port": int,
 *          "root_source": string, "root_fstype": string, "root_options": string, "root_overlay": 0|1,
 *          "mounts": [source, target, fstype, options, ...], "files": [path, contents, ...],
 *          "appends": [path, lines, ...],
 *          templated VMs only: "clock": string, "seed": hex string, "disks": [mmio index, sectors, ...]}
 * The root keys say what to switch to (a virtio-fs tag or a block device); without them the initramfs
 * stays the root. "root_overlay": 1 puts a writable tmpfs layer over a read-only root. "mounts" holds
 * quadruples mounted after the switch; options "ro" makes a read-only mount. "files" are provided before the
 * command runs (see provide_files). "exec_port" starts the exec agent (exec.c) on that vsock port.
 */
static int parse_config(const char *text, size_t len)
{
    struct json j = {text, text + len};
    if (expect(&j, '{'))
        return -1;
    skip_ws(&j);
    if (j.p < j.end && *j.p == '}')
        return 0;
    for (;;) {
        char *key = parse_string(&j);
        int rc = 0;
        if (!key || expect(&j, ':'))
            return -1;
        if (!strcmp(key, "cmd"))
            rc = parse_string_array(&j, cfg.cmd, MAX_ITEMS, &cfg.ncmd);
        else if (!strcmp(key, "env"))
            rc = parse_string_array(&j, cfg.env, MAX_ITEMS, &cfg.nenv);
        else if (!strcmp(key, "rlimits"))
            rc = parse_string_array(&j, cfg.rlimits, 64, &cfg.nrlimits);
        else if (!strcmp(key, "workdir"))
            rc = (cfg.workdir = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "hostname"))
            rc = (cfg.hostname = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "user"))
            rc = (cfg.user = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "console"))
            rc = (cfg.console = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "signals"))
            rc = parse_int(&j, &cfg.signals);
        else if (!strcmp(key, "exec_port"))
            rc = parse_int(&j, &cfg.exec_port);
        else if (!strcmp(key, "columns"))
            rc = parse_int(&j, &cfg.columns);
        else if (!strcmp(key, "rows"))
            rc = parse_int(&j, &cfg.rows);
        else if (!strcmp(key, "exit_port"))
            rc = parse_int(&j, &cfg.exit_port);
        else if (!strcmp(key, "root_source"))
            rc = (cfg.root_source = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "root_fstype"))
            rc = (cfg.root_fstype = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "root_options"))
            rc = (cfg.root_options = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "root_overlay"))
            rc = parse_int(&j, &cfg.root_overlay);
        else if (!strcmp(key, "files"))
            rc = parse_string_array(&j, cfg.files, 2 * 32, &cfg.nfiles) || cfg.nfiles % 2 ? -1 : 0;
        else if (!strcmp(key, "appends"))
            rc = parse_string_array(&j, cfg.appends, 2 * 32, &cfg.nappends) || cfg.nappends % 2 ? -1 : 0;
        else if (!strcmp(key, "clock"))
            rc = (cfg.clock = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "seed"))
            rc = (cfg.seed = parse_string(&j)) ? 0 : -1;
        else if (!strcmp(key, "disks"))
            rc = parse_string_array(&j, cfg.disks, 2 * 32, &cfg.ndisks) || cfg.ndisks % 2 ? -1 : 0;
        else if (!strcmp(key, "mounts"))
            rc = parse_string_array(&j, cfg.mounts, 4 * 64, &cfg.nmounts) || cfg.nmounts % 4 ? -1 : 0;
        else
            rc = -1; /* the VMM and init are built together: an unknown key is a bug */
        free(key);
        if (rc)
            return -1;
        skip_ws(&j);
        if (j.p < j.end && *j.p == ',') {
            j.p++;
            continue;
        }
        return expect(&j, '}');
    }
}

static int load_config_file(void)
{
    int fd = open(CONFIG_PATH, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) || st.st_size <= 0 || st.st_size > (64 << 20))
        fail_setup("%s: bad size", CONFIG_PATH);
    char *buf = malloc(st.st_size);
    ssize_t got = 0;
    while (buf && got < st.st_size) {
        ssize_t n = read(fd, buf + got, st.st_size - got);
        if (n <= 0)
            break;
        got += n;
    }
    close(fd);
    if (!buf || got != st.st_size)
        fail_setup("cannot read %s", CONFIG_PATH);
    if (parse_config(buf, got))
        fail_setup("%s is malformed", CONFIG_PATH);
    free(buf);
    return 0;
}

/* One byte from I/O port `port` through /dev/port (each read is one exit to the VMM). */
static int port_read(int fd, int port)
{
    unsigned char b;
    return pread(fd, &b, 1, port) == 1 ? b : -1;
}

/* The window mapped before the template point (window_map), so that a restored init only reads it. */
static struct { int fd; volatile uint64_t *w; size_t bytes; } window = {-1, MAP_FAILED, 0};

/*
 * Opens /dev/mem and maps the configuration's window, before the template point: the open and the mmap cost the
 * guest kernel tens of milliseconds where its code is emulated, and a VM restored from the template finds
 * them done. The window is MMIO (no RAM behind it), at the same address in every VM of the template's layout.
 * One mapping fits any usual configuration: every mmap and munmap costs much here.
 */
static void window_map(void)
{
    window.fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
    if (window.fd < 0)
        return;
    window.bytes = 64 << 10;
    window.w = mmap(NULL, window.bytes, PROT_READ | PROT_WRITE, MAP_SHARED, window.fd, KRUN_CONFIG_WINDOW);
}

/*
 * The configuration through the VMM's MMIO window (InitPorts.configWindow): a 4-byte length, then the JSON,
 * read with 8-byte loads from a /dev/mem mapping, one exit each and no system call, where the port costs
 * both per byte. NULL when the window cannot be mapped or the VMM left it empty: the port serves then.
 */
static char *config_from_window(size_t *len)
{
    long page = sysconf(_SC_PAGESIZE);
    int fd = window.fd;
    if (fd < 0)
        return NULL;
    char *buf = NULL;
    size_t bytes = window.bytes;
    volatile uint64_t *w = window.w;
    window.fd = -1;
    window.w = MAP_FAILED; /* this function owns both now: unmapped and closed below */
    if (w == MAP_FAILED)
        goto out;
    uint32_t n = (uint32_t)w[0];
    size_t words = (4 + (size_t)n + 7) / 8;
    if (n == 0 || n > KRUN_CONFIG_WINDOW_SIZE - 4) {
        munmap((void *)w, bytes);
        goto out;
    }
    if (words * 8 > bytes) {
        munmap((void *)w, bytes);
        bytes = (words * 8 + page - 1) / page * page;
        w = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, KRUN_CONFIG_WINDOW);
        if (w == MAP_FAILED)
            goto out;
    }
    uint64_t *copy = malloc(words * 8);
    if (copy) {
        for (size_t i = 0; i < words; i++)
            copy[i] = w[i];
        w[0] = 1; /* read: the VMM's timeline marks it */
        buf = malloc(n);
        if (buf) {
            memcpy(buf, (char *)copy + 4, n);
            *len = n;
        }
        free(copy);
    }
    munmap((void *)w, bytes);
out:
    close(fd);
    return buf;
}

/*
 * The template point (docs/templates.md). Nothing of the run is known yet: no root, no command, no console
 * opened. The write to KRUN_TEMPLATE_PORT tells the VMM, which may pause and snapshot the VM here; every VM
 * restored from that snapshot wakes up in the loop below. The VMM answers 1 on KRUN_TEMPLATE_PORT once this
 * run's configuration is ready, in its MMIO window and as a stream on KRUN_CONFIG_PORT: a 4-byte
 * little-endian length, then JSON.
 */
static void learn_ports(void);

static void load_config_from_vmm(void)
{
    unsigned char one = 1;
    window_map();
    learn_ports();
    int fd = open("/dev/port", O_RDWR | O_CLOEXEC);
    if (fd < 0 || pwrite(fd, &one, 1, KRUN_TEMPLATE_PORT) != 1)
        fail_setup("cannot reach the VMM's template port: %s", strerror(errno));
    for (;;) {
        int ready = port_read(fd, KRUN_TEMPLATE_PORT);
        if (ready == 1)
            break;
        if (ready < 0)
            fail_setup("template port: %s", strerror(errno));
        struct timespec ts = {0, 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    size_t len = 0;
    char *buf = config_from_window(&len);
    if (buf) {
        close(fd);
        if (parse_config(buf, len))
            fail_setup("the VMM's configuration is malformed");
        free(buf);
        return;
    }
    for (int i = 0; i < 4; i++) {
        int b = port_read(fd, KRUN_CONFIG_PORT);
        if (b < 0)
            fail_setup("config port: %s", strerror(errno));
        len |= (size_t)b << (8 * i);
    }
    if (len == 0 || len > (64 << 20))
        fail_setup("the VMM's configuration has a bad length %zu", len);
    buf = malloc(len);
    if (!buf)
        fail_setup("no memory for the configuration (%zu bytes)", len);
    for (size_t i = 0; i < len; i++) {
        int b = port_read(fd, KRUN_CONFIG_PORT);
        if (b < 0)
            fail_setup("config port: %s", strerror(errno));
        buf[i] = (char)b;
    }
    close(fd);
    if (parse_config(buf, len))
        fail_setup("the VMM's configuration is malformed");
    free(buf);
}

static int unhex(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/*
 * What VMs restored from one template must not share: the wall clock goes on from the snapshot's moment
 * until set, and the random pool is the snapshot's. The host's time and entropy from the configuration fix
 * both before anything of the run uses them; RNDRESEEDCRNG makes the pool's output depend on the new
 * entropy at once, rather than at the next scheduled reseed.
 */
static void apply_per_run_state(void)
{
    if (cfg.clock) {
        char *dot;
        struct timespec ts = {.tv_sec = strtoll(cfg.clock, &dot, 10), .tv_nsec = 0};
        if (*dot == '.')
            ts.tv_nsec = strtol(dot + 1, NULL, 10);
        if (clock_settime(CLOCK_REALTIME, &ts))
            say("cannot set the clock: %s", strerror(errno));
    }
    if (cfg.seed) {
        size_t n = strlen(cfg.seed) / 2;
        struct {
            int entropy_count;
            int buf_size;
            unsigned char buf[256];
        } pool;
        if (n > sizeof pool.buf)
            n = sizeof pool.buf;
        for (size_t i = 0; i < n; i++) {
            int hi = unhex(cfg.seed[2 * i]), lo = unhex(cfg.seed[2 * i + 1]);
            if (hi < 0 || lo < 0)
                fail_setup("the VMM's seed is not hex");
            pool.buf[i] = (unsigned char)(hi << 4 | lo);
        }
        pool.entropy_count = (int)(8 * n);
        pool.buf_size = (int)n;
        int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, KRUN_RNDADDENTROPY, &pool) || ioctl(fd, KRUN_RNDRESEEDCRNG))
            say("cannot reseed the random pool: %s", strerror(errno));
        if (fd >= 0)
            close(fd);
    }
}

/* The first entry of DIR whose name starts with PREFIX, into NAME; 0 if there is none. */
static int first_entry(const char *dir, const char *prefix, char *name, size_t size)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int found = 0;
    if (!d)
        return 0;
    while (!found && (e = readdir(d)))
        if (e->d_name[0] != '.' && !strncmp(e->d_name, prefix, strlen(prefix)) && strlen(e->d_name) < size) {
            strcpy(name, e->d_name);
            found = 1;
        }
    closedir(d);
    return found;
}

static unsigned long long read_number(const char *path)
{
    char text[32] = {0};
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    return n > 0 ? strtoull(text, NULL, 10) : 0;
}

/*
 * Disks of a VM restored from a template: the guest kernel probed them (capacity, partition table) when the
 * template booted, over that run's images; this run may give other images. The device raised a configuration
 * change on restore where the capacity differs: wait (bounded) until the kernel has taken this run's
 * capacity, then have it read the partition table again (nothing has the disk open at this point).
 */
static void refresh_disks(void)
{
    /* /sys as early_mounts() left it, or (when that failed) a mount of our own meanwhile. */
    const char *sys = sys_mounted & MOUNTED_SYS ? "/sys" : "/krun/sys";
    if (cfg.ndisks == 0)
        return;
    if (!(sys_mounted & MOUNTED_SYS)) {
        mkdir("/krun/sys", 0555);
        if (mount("sysfs", "/krun/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL)) {
            say("cannot mount sysfs to find the disks: %s", strerror(errno));
            return;
        }
    }
    for (int i = 0; i + 1 < cfg.ndisks; i += 2) {
        char dir[96], virtio[32], name[32], path[160];
        snprintf(dir, sizeof dir, "%s/bus/platform/devices/virtio-mmio.%s", sys, cfg.disks[i]);
        if (!first_entry(dir, "virtio", virtio, sizeof virtio)) {
            say("disk %s: no virtio device under %s", cfg.disks[i], dir);
            continue;
        }
        snprintf(path, sizeof path, "%s/%s/block", dir, virtio);
        if (!first_entry(path, "", name, sizeof name)) {
            say("disk %s: no block device under %s", cfg.disks[i], path);
            continue;
        }
        unsigned long long want = strtoull(cfg.disks[i + 1], NULL, 10), have = 0;
        snprintf(path, sizeof path, "%s/block/%s/size", sys, name);
        for (int waited = 0; (have = read_number(path)) != want && waited < 5000; waited++) {
            struct timespec ts = {0, 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (have != want)
            say("disk %s: the kernel still sees %llu sectors, not %llu", name, have, want);
        snprintf(path, sizeof path, "/dev/%s", name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || ioctl(fd, KRUN_BLKRRPART))
            say("disk %s: cannot read its partition table again: %s", name, strerror(errno));
        if (fd >= 0)
            close(fd);
    }
    if (!(sys_mounted & MOUNTED_SYS) && umount2("/krun/sys", MNT_DETACH))
        say("cannot unmount /krun/sys: %s", strerror(errno));
}

/* libkrun's contract: the command in KRUN_INIT, its arguments in argv after the kernel's "--". */
static void load_config_env(int argc, char **argv)
{
    char *init = getenv("KRUN_INIT");
    char *rl = getenv("KRUN_RLIMITS");
    if (!init)
        fail_setup("no %s and no KRUN_INIT: nothing to run", CONFIG_PATH);
    cfg.cmd[cfg.ncmd++] = init;
    for (int i = 1; i < argc && cfg.ncmd < MAX_ITEMS; i++)
        cfg.cmd[cfg.ncmd++] = argv[i];
    cfg.workdir = getenv("KRUN_WORKDIR");
    if (rl) {
        char *save, *tok;
        for (tok = strtok_r(strdup(rl), ",", &save); tok && cfg.nrlimits < 64; tok = strtok_r(NULL, ",", &save))
            cfg.rlimits[cfg.nrlimits++] = tok;
    }
    for (char **e = environ; *e && cfg.nenv < MAX_ITEMS; e++)
        if (strncmp(*e, "KRUN_", 5))
            cfg.env[cfg.nenv++] = *e;
}

/* ---- system set-up */

static void mkdirs(const char *path, mode_t mode)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, mode);
}

static void mount_fs(const char *source, const char *target, const char *type, unsigned long flags,
                     const char *data, mode_t mode)
{
    mkdirs(target, mode);
    if (mount(source, target, type, flags, data) && errno != EBUSY)
        fail_setup("mount %s on %s: %s", type, target, strerror(errno));
}

/* "ro" (alone or first in a comma list) becomes MS_RDONLY; the rest is the filesystem's data. */
static void mount_with_options(const char *source, const char *target, const char *fstype, const char *options)
{
    unsigned long flags = 0;
    const char *data = options && *options ? options : NULL;
    if (data && (!strcmp(data, "ro") || !strncmp(data, "ro,", 3))) {
        flags |= MS_RDONLY;
        data = data[2] ? data + 3 : NULL;
    }
    mkdirs(target, 0755);
    if (mount(source, target, fstype, flags, data) == 0)
        return;
    /* "dax=..." asks for the share's DAX window: a kernel without FUSE_DAX, or a device without a window,
     * refuses it with EINVAL; the share is then mounted without. */
    char plain[256];
    if (errno == EINVAL && data && strstr(data, "dax") && strlen(data) < sizeof(plain)) {
        size_t n = 0;
        for (const char *p = data; *p;) {
            const char *end = strchrnul(p, ',');
            if (strncmp(p, "dax", 3) || (p[3] != '=' && p + 3 != end)) {
                if (n)
                    plain[n++] = ',';
                memcpy(plain + n, p, end - p);
                n += end - p;
            }
            p = *end ? end + 1 : end;
        }
        plain[n] = 0;
        if (mount(source, target, fstype, flags, n ? plain : NULL) == 0)
            return;
    }
    fail_setup("mount %s (%s) on %s: %s", source, fstype, target, strerror(errno));
}

static int write_file(const char *path, const char *from, const char *text);

static void mount_fs(const char *source, const char *target, const char *type, unsigned long flags,
                     const char *data, mode_t mode);

/*
 * /proc, /sys, /dev/pts and /dev/shm, mounted on the initramfs before the template point (beside /dev), so
 * that a run, templated or not, moves them into its root rather than mounting them: each mount costs the
 * guest kernel a tenth of a second or more where its code is emulated.
 */
static void early_mounts(void)
{
    struct { const char *source, *target, *type; unsigned long flags; const char *data; mode_t mode; int bit; } m[] = {
        {"proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555, MOUNTED_PROC},
        {"sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555, MOUNTED_SYS},
        {"devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666", 0755, MOUNTED_PTS},
        {"shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777, MOUNTED_SHM},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        if ((m[i].bit & (MOUNTED_PTS | MOUNTED_SHM)) && !dev_mounted)
            continue;
        mkdirs(m[i].target, m[i].mode);
        if (mount(m[i].source, m[i].target, m[i].type, m[i].flags, m[i].data) == 0)
            sys_mounted |= m[i].bit;
    }
    symlink("/proc/self/fd", "/dev/fd");
    symlink("/proc/self/fd/0", "/dev/stdin");
    symlink("/proc/self/fd/1", "/dev/stdout");
    symlink("/proc/self/fd/2", "/dev/stderr");
}

/*
 * Moves /proc, /sys and /dev (with /dev/pts and /dev/shm on it) from the initramfs into the new root. One
 * that cannot be moved (the root has no such directory and cannot have one made) is detached, and
 * setup_filesystems() mounts it afresh as before.
 */
static void move_system_mounts(const char *newroot)
{
    static const struct { const char *path; int bits; mode_t mode; } m[] = {
        {"/proc", MOUNTED_PROC, 0555}, {"/sys", MOUNTED_SYS, 0555}, {"/dev", 0, 0755},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        int isdev = !m[i].bits;
        if (isdev ? !dev_mounted : !(sys_mounted & m[i].bits))
            continue;
        char target[300];
        snprintf(target, sizeof target, "%s%s", newroot, m[i].path);
        mkdirs(target, m[i].mode);
        if (mount(m[i].path, target, NULL, MS_MOVE, NULL) == 0)
            continue;
        umount2(m[i].path, MNT_DETACH);
        if (isdev) {
            dev_mounted = 0;
            sys_mounted &= ~(MOUNTED_PTS | MOUNTED_SHM);
        } else {
            sys_mounted &= ~m[i].bits;
        }
    }
}

/* Which of cfg.files (index i / 2) and cfg.appends (32 + i / 2) are already in the overlay's upper layer. */
static unsigned char file_staged[64];

/*
 * Gives the overlay's upper layer the parent directories of `path` (relative to the root, "/etc/hosts") as the
 * lower layer has them: a directory present in both layers is merged by overlayfs, as one copied up would be,
 * so a file written into it needs no copy-up. 0, or -1 when a component of the lower layer's path is not a
 * plain directory (a symlink among them: only the mounted overlay resolves it as the guest would).
 */
static int stage_parents(const char *lower, const char *upper, const char *path)
{
    /* The directory whose parents were staged last: the next file in it (/etc/hosts after /etc/resolv.conf)
     * needs no lookup again. */
    static char staged_dir[256];
    char rel[256];
    if (path[0] != '/' || snprintf(rel, sizeof rel, "%s", path + 1) >= (int)sizeof rel)
        return -1;
    char *last = strrchr(rel, '/');
    size_t dirlen = last ? (size_t)(last - rel) : 0;
    if (dirlen && staged_dir[0] && strlen(staged_dir) == dirlen && !strncmp(staged_dir, rel, dirlen))
        return 0;
    for (char *p = rel; (p = strchr(p, '/')); p++) {
        char from[300], to[300];
        struct stat st;
        *p = 0;
        snprintf(from, sizeof from, "%s/%s", lower, rel);
        snprintf(to, sizeof to, "%s/%s", upper, rel);
        if (lstat(from, &st) == 0) {
            if (!S_ISDIR(st.st_mode))
                return -1;
            if (mkdir(to, st.st_mode & 07777) == 0) {
                /* made by root with init's umask, the kernel's 022 (init never sets one): owner and mode
                 * need a call each only where they differ from that (each a tenth of the step on kvm-pvm) */
                if (((st.st_uid || st.st_gid) && chown(to, st.st_uid, st.st_gid))
                    || ((st.st_mode & 07022) && chmod(to, st.st_mode & 07777)))
                    return -1;
            } else if (errno != EEXIST) {
                return -1;
            }
        } else if (errno != ENOENT || (mkdir(to, 0755) && errno != EEXIST)) {
            return -1;
        }
        *p = '/';
    }
    if (dirlen) {
        memcpy(staged_dir, rel, dirlen);
        staged_dir[dirlen] = 0;
    }
    return 0;
}

/*
 * The files devices provide (/etc/resolv.conf, /etc/hosts), written into the overlay's upper layer before it
 * is mounted: the same files as provide_file() writes into the mounted overlay, without overlayfs copying
 * their directories up through virtio-fs first (about a second of guest kernel work on hosts that emulate
 * it). An appended file starts with the lower layer's (or an earlier staged) content. A file whose path
 * cannot be staged so (a symlink on the way, a directory where the file goes) is left to provide_file().
 */
static void stage_files(const char *lower, const char *upper)
{
    for (int k = 0; k < 2; k++) {
        char **list = k ? cfg.appends : cfg.files;
        int n = k ? cfg.nappends : cfg.nfiles;
        for (int i = 0; i + 1 < n; i += 2) {
            const char *path = list[i];
            char from[300], to[300];
            struct stat st;
            if (snprintf(from, sizeof from, "%s%s", lower, path) >= (int)sizeof from
                || snprintf(to, sizeof to, "%s%s", upper, path) >= (int)sizeof to || stage_parents(lower, upper, path))
                continue;
            int present = lstat(from, &st) == 0;
            if (present && (k ? !S_ISREG(st.st_mode) : S_ISDIR(st.st_mode)))
                continue; /* a replaced symlink is shadowed, as the rename over it in the overlay replaces it */
            if (lstat(to, &st) != 0) {
                /* nothing reads the upper layer before the overlay is mounted: written in place */
                if (write_file(to, k && present ? from : NULL, list[i + 1])) {
                    unlink(to);
                    continue;
                }
                file_staged[k * 32 + i / 2] = 1;
                continue;
            }
            if (!k)
                continue; /* listed twice: provide_file() does it as before */
            snprintf(from, sizeof from, "%s", to); /* appended to what was staged */
            char tmp[310];
            snprintf(tmp, sizeof tmp, "%s.krun-new", to);
            if (write_file(tmp, from, list[i + 1]) || rename(tmp, to)) {
                unlink(tmp);
                continue;
            }
            file_staged[k * 32 + i / 2] = 1;
        }
    }
}

/*
 * The directories every run mounts over (/proc, /sys, /dev, /tmp), made in the overlay's upper layer and marked
 * opaque before the overlay is mounted: overlayfs finds them there and never looks them up in the lower layer,
 * where each costs a FUSE LOOKUP and a GETXATTR through virtio-fs (a tenth of a second or more of guest kernel
 * work on hosts that emulate it, also when they are looked up again at the end). What the lower layer has there
 * is hidden by the mounts anyway (so is their mode, here the umask's). One that cannot be made opaque is removed:
 * the merged directory serves then.
 */
static void stage_system_dirs(const char *upper)
{
    static const struct { const char *name; mode_t mode; } d[] = {
        {"proc", 0555}, {"sys", 0555}, {"dev", 0755}, {"tmp", 01777},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", upper, d[i].name);
        if (mkdir(path, d[i].mode))
            continue;
        if (setxattr(path, "trusted.overlay.opaque", "y", 1, 0))
            rmdir(path);
    }
}

/*
 * Makes the configured filesystem the root: mounted at /krun/newroot, moved over /, chrooted into. The
 * initramfs (holding only this init and its configuration) stays underneath, unreachable. With
 * root_overlay the configured filesystem is only the read-only lower layer of an overlayfs whose upper
 * layer is a tmpfs: whatever the guest writes (files, and the mount points of shares) lives in guest
 * memory and goes with the VM.
 */
static void switch_root(void)
{
    const char *newroot = "/krun/newroot";
    if (!cfg.root_fstype)
        return;
    if (cfg.root_overlay) {
        /* read-only, with the root's own options after "ro" (dax=inode for a share with a DAX window) */
        char lower[256];
        const char *opts = cfg.root_options ? cfg.root_options : "";
        if (!strcmp(opts, "ro") || !strncmp(opts, "ro,", 3))
            opts += opts[2] ? 3 : 2;
        snprintf(lower, sizeof(lower), "ro%s%s", *opts ? "," : "", opts);
        mount_with_options(cfg.root_source, "/krun/lower", cfg.root_fstype, lower);
        mount_fs("tmpfs", "/krun/rw", "tmpfs", MS_NOSUID, "mode=0755", 0755);
        mkdirs("/krun/rw/upper", 0755);
        mkdirs("/krun/rw/work", 0755);
        stage_system_dirs("/krun/rw/upper");
        stage_files("/krun/lower", "/krun/rw/upper");
        mount_with_options("overlay", newroot, "overlay",
                           "lowerdir=/krun/lower,upperdir=/krun/rw/upper,workdir=/krun/rw/work");
    } else {
        mount_with_options(cfg.root_source, newroot, cfg.root_fstype, cfg.root_options);
    }
    move_system_mounts(newroot);
    if (chdir(newroot) || mount(".", "/", NULL, MS_MOVE, NULL) || chroot(".") || chdir("/"))
        fail_setup("switch to root %s: %s", cfg.root_source, strerror(errno));
}

/* Writes all of text to fd; 0 or -1. */
static int write_all(int fd, const char *text, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);
        if (n <= 0)
            return -1;
        done += n;
    }
    return 0;
}

/* Writes a file: text alone, or what from holds (read in full) followed by text; 0 or -1. */
static int write_file(const char *path, const char *from, const char *text)
{
    char old[16384];
    ssize_t oldlen = 0;
    if (from) {
        int in = open(from, O_RDONLY | O_CLOEXEC);
        if (in >= 0) {
            ssize_t n;
            while (oldlen < (ssize_t)sizeof old && (n = read(in, old + oldlen, sizeof old - oldlen)) > 0)
                oldlen += n;
            close(in);
        }
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    int rc = write_all(fd, old, oldlen);
    if (!rc && oldlen > 0 && old[oldlen - 1] != '\n')
        rc = write_all(fd, "\n", 1);
    if (!rc)
        rc = write_all(fd, text, strlen(text));
    return close(fd) || rc ? -1 : 0;
}

/*
 * One file a device needs (/etc/resolv.conf replaced, /etc/hosts added to). A root of the guest's own (the
 * initramfs, or an overlay whose writes stay in guest memory) gets it written. A host directory shared live
 * must not be written to: there the file is laid over the existing one, a copy in /dev (devtmpfs, guest
 * memory) bind-mounted on it; a path the shared root does not have is left out (the kernel log says so).
 */
static void provide_file(const char *path, const char *text, int append, int n)
{
    int own_root = !cfg.root_fstype || cfg.root_overlay;
    if (own_root) {
        char dir[256];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = 0;
            mkdirs(dir, 0755);
        }
        char tmp[300];
        snprintf(tmp, sizeof tmp, "%s.krun-new", path);
        if (write_file(tmp, append ? path : NULL, text) || rename(tmp, path))
            say("cannot write %s: %s", path, strerror(errno));
        return;
    }
    struct stat st;
    if (stat(path, &st) || !S_ISREG(st.st_mode)) {
        /* Common (a root of one static binary has no /etc): only the kernel log tells. */
        int kmsg = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
        if (kmsg >= 0) {
            dprintf(kmsg, "krun-init: %s is not provided: the shared root has no such file to lay it over\n", path);
            close(kmsg);
        }
        return;
    }
    char copy[64];
    snprintf(copy, sizeof copy, "/dev/.krun-file-%d", n);
    if (write_file(copy, append ? path : NULL, text) || mount(copy, path, NULL, MS_BIND, NULL))
        say("cannot provide %s: %s", path, strerror(errno));
}

static void provide_files(void)
{
    for (int i = 0; i + 1 < cfg.nfiles; i += 2)
        if (!file_staged[i / 2])
            provide_file(cfg.files[i], cfg.files[i + 1], 0, i / 2);
    for (int i = 0; i + 1 < cfg.nappends; i += 2)
        if (!file_staged[32 + i / 2])
            provide_file(cfg.appends[i], cfg.appends[i + 1], 1, 32 + i / 2);
}

/* Name servers a card learnt by DHCP, unless a device gave /etc/resolv.conf already (passt's forwarder). */
static void provide_resolv_conf(const char *text)
{
    for (int i = 0; i + 1 < cfg.nfiles; i += 2)
        if (!strcmp(cfg.files[i], "/etc/resolv.conf"))
            return;
    provide_file("/etc/resolv.conf", text, 0, 31);
}

static void extra_mounts(void)
{
    for (int i = 0; i + 3 < cfg.nmounts; i += 4)
        mount_with_options(cfg.mounts[i], cfg.mounts[i + 1], cfg.mounts[i + 2], cfg.mounts[i + 3]);
}

static void setup_filesystems(void)
{
    if (!(sys_mounted & MOUNTED_PROC))
        mount_fs("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
    if (!(sys_mounted & MOUNTED_SYS))
        mount_fs("sysfs", "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL, 0555);
    if (!dev_mounted)
        mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
    dev_mounted = 1;
    if (!(sys_mounted & MOUNTED_PTS))
        mount_fs("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "gid=5,mode=620,ptmxmode=666", 0755);
    if (!(sys_mounted & MOUNTED_SHM))
        mount_fs("shm", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
    mount_fs("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777", 01777);
    symlink("/proc/self/fd", "/dev/fd");
    symlink("/proc/self/fd/0", "/dev/stdin");
    symlink("/proc/self/fd/1", "/dev/stdout");
    symlink("/proc/self/fd/2", "/dev/stderr");
}

static int resource_id(const char *name)
{
    static const struct { const char *name; int id; } ids[] = {
        {"CPU", RLIMIT_CPU}, {"FSIZE", RLIMIT_FSIZE}, {"DATA", RLIMIT_DATA}, {"STACK", RLIMIT_STACK},
        {"CORE", RLIMIT_CORE}, {"RSS", RLIMIT_RSS}, {"NPROC", RLIMIT_NPROC}, {"NOFILE", RLIMIT_NOFILE},
        {"MEMLOCK", RLIMIT_MEMLOCK}, {"AS", RLIMIT_AS}, {"LOCKS", RLIMIT_LOCKS},
        {"SIGPENDING", RLIMIT_SIGPENDING}, {"MSGQUEUE", RLIMIT_MSGQUEUE}, {"NICE", RLIMIT_NICE},
        {"RTPRIO", RLIMIT_RTPRIO}, {"RTTIME", RLIMIT_RTTIME},
    };
    char *end;
    long n = strtol(name, &end, 10);
    if (*name && !*end)
        return (int)n; /* libkrun passes resource numbers */
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        if (!strcmp(ids[i].name, name))
            return ids[i].id;
    return -1;
}

static rlim_t parse_limit(const char *s)
{
    return (!strcmp(s, "-1") || !strcmp(s, "unlimited")) ? RLIM_INFINITY : (rlim_t)strtoull(s, NULL, 10);
}

/* Each entry is NAME=SOFT:HARD (or NAME=LIMIT). */
static void setup_rlimits(void)
{
    for (int i = 0; i < cfg.nrlimits; i++) {
        char *spec = strdup(cfg.rlimits[i]);
        char *eq = strchr(spec, '=');
        if (!eq)
            fail_setup("bad rlimit '%s'", cfg.rlimits[i]);
        *eq = 0;
        char *colon = strchr(eq + 1, ':');
        if (colon)
            *colon = 0;
        int id = resource_id(spec);
        struct rlimit rl;
        rl.rlim_cur = parse_limit(eq + 1);
        rl.rlim_max = colon ? parse_limit(colon + 1) : rl.rlim_cur;
        if (id < 0 || setrlimit(id, &rl))
            fail_setup("rlimit '%s': %s", cfg.rlimits[i], id < 0 ? "unknown resource" : strerror(errno));
        free(spec);
    }
}

/* Console ports found before the template point (learn_ports): name and /dev path. */
static struct { const char *name; char path[64]; } known_ports[4];
static int known_port_count;

/*
 * Finds the /dev paths of the named console ports (/sys/class/virtio-ports/vportNpM/name), all in one pass
 * over the ports: every open of a sysfs file costs the guest kernel much where its code is emulated. Ports
 * may still be appearing: retried `attempts` times, 10 ms apart (500: 5 s). Names already known
 * (known_ports, found before the template point) need no pass. 0 when every name was found.
 */
static int find_ports_within(const char *const *names, char (*paths)[64], int n, int attempts)
{
    int found = 0;
    for (int i = 0; i < n; i++) {
        paths[i][0] = 0;
        for (int k = 0; k < known_port_count; k++)
            if (!strcmp(known_ports[k].name, names[i])) {
                snprintf(paths[i], sizeof paths[i], "%s", known_ports[k].path);
                found++;
                break;
            }
    }
    for (int attempt = 0; attempt < attempts && found < n; attempt++) {
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        while (d && found < n && (e = readdir(d))) {
            char file[300], buf[64];
            if (e->d_name[0] == '.')
                continue;
            snprintf(file, sizeof file, "/sys/class/virtio-ports/%s/name", e->d_name);
            int fd = open(file, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t len = read(fd, buf, sizeof buf - 1);
            close(fd);
            if (len <= 0)
                continue;
            buf[len] = 0;
            if (buf[len - 1] == '\n')
                buf[len - 1] = 0;
            for (int i = 0; i < n; i++) {
                if (!paths[i][0] && !strcmp(buf, names[i])) {
                    snprintf(paths[i], sizeof paths[i], "/dev/%.58s", e->d_name);
                    found++;
                }
            }
        }
        if (d)
            closedir(d);
        if (found < n && attempt + 1 < attempts) {
            struct timespec ts = {0, 10 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
    }
    return found == n ? 0 : -1;
}

static int find_ports(const char *const *names, char (*paths)[64], int n)
{
    return find_ports_within(names, paths, n, 500);
}

/*
 * Before the template point: the console ports the device has already set up, named, so that a VM restored from
 * the template finds their paths without the pass over sysfs (about twenty system calls). Only their names are
 * read; none is opened (the host side of a port is the run's, and an open tells the host). The guest restored from
 * the template has the same ports: the device's state is the template's.
 */
static void learn_ports(void)
{
    static const char *const names[] = {"krun-stderr", "krun-stdin", "krun-stdout", "krun-signals"};
    char paths[4][64];
    find_ports_within(names, paths, 4, 1);
    for (int i = 0; i < 4; i++)
        if (paths[i][0]) {
            known_ports[known_port_count].name = names[i];
            memcpy(known_ports[known_port_count++].path, paths[i], sizeof paths[i]);
        }
}

static int open_port(const char *name, const char *path, int flags)
{
    if (!path[0])
        fail_setup("console port %s did not appear", name);
    int fd = open(path, flags | O_CLOEXEC);
    if (fd < 0)
        fail_setup("open %s (%s): %s", path, name, strerror(errno));
    return fd;
}

static int terminal_mode(void)
{
    return cfg.console && !strcmp(cfg.console, "terminal");
}

/* The command's three standard streams, as fds to dup2 in the child. */
static int stdio_fds[3] = {-1, -1, -1};
/* Console port krun-signals ("signals"), read by init only. */
static int signal_fd = -1;

static void open_signal_port(const char *path)
{
    if (path[0])
        signal_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (signal_fd < 0)
        say("console port krun-signals: %s; the host's signals will not reach the command",
            path[0] ? strerror(errno) : "not found");
}

/* The console appears once the virtio-console driver has set its port up: wait up to 5 s. */
static int open_hvc0(void)
{
    for (int attempt = 0; attempt < 500; attempt++) {
        int fd = open("/dev/hvc0", O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (fd >= 0 || (errno != ENOENT && errno != ENODEV && errno != ENXIO))
            return fd;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static void setup_console(void)
{
    if (terminal_mode()) {
        int hvc = open_hvc0();
        if (hvc < 0)
            fail_setup("open /dev/hvc0: %s", strerror(errno));
        console_fd = hvc;
        if (cfg.columns > 0 && cfg.rows > 0) {
            struct winsize ws = {.ws_row = cfg.rows, .ws_col = cfg.columns};
            ioctl(hvc, TIOCSWINSZ, &ws);
        }
        stdio_fds[0] = stdio_fds[1] = stdio_fds[2] = hvc;
        if (cfg.signals) {
            static const char *const names[] = {"krun-signals"};
            char paths[1][64];
            find_ports(names, paths, 1);
            open_signal_port(paths[0]);
        }
    } else {
        static const char *const names[] = {"krun-stderr", "krun-stdin", "krun-stdout", "krun-signals"};
        char paths[4][64];
        find_ports(names, paths, cfg.signals ? 4 : 3);
        stdio_fds[2] = open_port(names[0], paths[0], O_WRONLY);
        console_fd = stdio_fds[2]; /* init's own messages go where the command's errors go */
        stdio_fds[0] = open_port(names[1], paths[1], O_RDONLY);
        stdio_fds[1] = open_port(names[2], paths[2], O_WRONLY);
        if (cfg.signals)
            open_signal_port(paths[3]);
    }
}

static void setup_environment(void)
{
    int have_path = 0, have_home = 0, have_term = 0;
    clearenv();
    for (int i = 0; i < cfg.nenv; i++) {
        char *eq = strchr(cfg.env[i], '=');
        if (!eq)
            continue;
        *eq = 0;
        setenv(cfg.env[i], eq + 1, 1);
        have_path |= !strcmp(cfg.env[i], "PATH");
        have_home |= !strcmp(cfg.env[i], "HOME");
        have_term |= !strcmp(cfg.env[i], "TERM");
        *eq = '=';
    }
    if (!have_path)
        setenv("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", 1);
    if (!have_home)
        setenv("HOME", "/root", 1);
    if (!have_term && terminal_mode())
        setenv("TERM", "linux", 1);
}

/* "UID:GID[:G1,G2,...]": supplementary groups (none when not given), then the group, then the user. */
static int switch_user(const char *spec)
{
    char *end;
    gid_t groups[64];
    int ngroups = 0;
    unsigned long uid = strtoul(spec, &end, 10);
    if (*end != ':') {
        say("bad user '%s'", spec);
        return -1;
    }
    unsigned long gid = strtoul(end + 1, &end, 10);
    if (*end == ':') {
        const char *p = end + 1;
        while (*p && ngroups < 64) {
            groups[ngroups++] = (gid_t)strtoul(p, &end, 10);
            p = *end == ',' ? end + 1 : end;
            if (end == p && *p)
                break;
        }
    }
    if (setgroups(ngroups, groups) || setgid((gid_t)gid) || setuid((uid_t)uid)) {
        say("cannot run as user %s: %s", spec, strerror(errno));
        return -1;
    }
    return 0;
}

/* The command's process, in the child of init's vfork(): nothing but system calls until exec or _exit. */
static void run_child(void)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /*
     * No signal dispositions to reset: exec resets the handlers, and init ignores no signal before this
     * fork (SIGCHLD gets its handler after it; the exec agent sets its own in processes of its own). A
     * signal ignored here would need resetting; resetting all 64 cost 33-40 ms of guest kernel work on
     * hosts that emulate it.
     */
    setsid();
    for (int i = 0; i < 3; i++) {
        if (dup2(stdio_fds[i], i) < 0)
            _exit(125);
    }
    if (terminal_mode() && ioctl(0, TIOCSCTTY, 1) < 0)
        say("cannot make the console the controlling terminal: %s", strerror(errno));
    if (cfg.user && switch_user(cfg.user))
        _exit(125);
    if (chdir(cfg.workdir ? cfg.workdir : "/")) {
        say("cannot enter working directory %s: %s", cfg.workdir, strerror(errno));
        _exit(125);
    }
    mark(PHASE_EXEC);
    execvp(cfg.cmd[0], cfg.cmd);
    int err = errno;
    say("%s: %s", cfg.cmd[0], strerror(err));
    _exit(err == ENOENT || err == ENOTDIR ? 127 : 126);
}

static void on_sigchld(int sig)
{
    (void)sig; /* only to interrupt ppoll */
}

/*
 * Waits for the command and reaps every orphan meanwhile; returns the command's status. In pipes mode the
 * command's stdout and stderr ports are watched too: the host closes one (PORT_OPEN 0, the guest sees POLLHUP)
 * when its end of it failed, a pipe whose reader went away. The command's writes to it then block; it gets
 * SIGPIPE, as a local command writing into that pipe would, and ends with 128+SIGPIPE unless it handles it.
 */
static int wait_for_command(pid_t child, int out_fd, int err_fd)
{
    sigset_t chld, waiting;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &waiting);
    sigdelset(&waiting, SIGCHLD);
    struct sigaction sa = {.sa_handler = on_sigchld}; /* no SA_RESTART: ppoll returns */
    sigaction(SIGCHLD, &sa, NULL);

    /* Signals the host asks for (an OCI runtime's kill) arrive on the krun-signals port, watched with the
     * command's output ports: nothing is polled while the command runs. */
    struct pollfd watch[3] = {{.fd = out_fd, .events = 0}, {.fd = err_fd, .events = 0}, {.fd = signal_fd, .events = POLLIN}};
    for (;;) {
        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
            if (pid == child)
                return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (pid < 0 && errno == ECHILD)
            return 125; /* cannot happen while the command runs */
        if (ppoll(watch, 3, NULL, &waiting) > 0) {
            for (int i = 0; i < 2; i++) {
                if (watch[i].fd >= 0 && (watch[i].revents & (POLLHUP | POLLERR))) {
                    kill(-child, SIGPIPE);
                    watch[i].fd = -1; /* told once */
                }
            }
            if (watch[2].fd >= 0 && (watch[2].revents & POLLIN)) {
                unsigned char sigs[64];
                ssize_t n = read(watch[2].fd, sigs, sizeof sigs);
                for (ssize_t i = 0; i < n; i++)
                    if (sigs[i] > 0 && sigs[i] < NSIG)
                        kill(child, sigs[i]);
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
                    watch[2].fd = -1; /* closed by the host: no more signals */
            } else if (watch[2].fd >= 0 && (watch[2].revents & (POLLHUP | POLLERR))) {
                watch[2].fd = -1; /* the host closed it: no more signals */
            }
        }
    }
}

int main(int argc, char **argv)
{
    if (getpid() != 1) {
        fprintf(stderr, "krun-init must run as process 1 of a krun guest\n");
        return 1;
    }
    cfg.exit_port = KRUN_EXIT_PORT;
    /* /dev first: /dev/port for the timeline marker, and block devices for a disk root. */
    mount_fs("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755", 0755);
    dev_mounted = 1;
    reserve_stdio_fds();
    mark_init_started();
    early_mounts();
    if (access(TEMPLATE_MARKER_PATH, F_OK) == 0) {
        load_config_from_vmm();
        apply_per_run_state();
        refresh_disks();
    } else if (load_config_file()) {
        load_config_env(argc, argv);
    }
    switch_root();
    mark(PHASE_ROOT);
    setup_filesystems();
    extra_mounts();
    provide_files();
    mark(PHASE_FILES);
    if (cfg.ncmd == 0)
        fail_setup("no command to run");
    cfg.cmd[cfg.ncmd] = NULL;
    if (cfg.hostname && sethostname(cfg.hostname, strlen(cfg.hostname)))
        say("sethostname %s: %s", cfg.hostname, strerror(errno));
    setup_console();
    mark(PHASE_CONSOLE);
    setup_network(say, provide_resolv_conf); /* after the console: its problems go to the command's stderr */
    mark(PHASE_NETWORK);
    setup_environment();
    setup_rlimits();
    if (cfg.exec_port > 0)
        start_exec_agent((unsigned)cfg.exec_port); /* before the command, with the container's rlimits */

    /*
     * Process 1 gets no default signal actions; keep SIGCHLD deliverable for waitpid.
     * vfork: the child borrows init's memory until it execs, so neither copies page tables nor takes
     * copy-on-write faults (on a kvm-pvm host fork + exec of /bin/true took 1.14-1.41 s of guest time,
     * vfork + exec 0.89-1.09 s). run_child() only makes system calls, writes its own stack and ends in
     * exec or _exit; it never returns here.
     */
    pid_t child = vfork();
    if (child < 0)
        fail_setup("vfork: %s", strerror(errno));
    if (child == 0)
        run_child();
    int out_fd = -1, err_fd = -1;
    if (terminal_mode()) {
        for (int i = 0; i < 3; i++)
            if (stdio_fds[i] != console_fd)
                close(stdio_fds[i]);
    } else {
        /* stdin is the command's alone; init keeps stdout and stderr to watch them for the host closing them. */
        close(stdio_fds[0]);
        out_fd = stdio_fds[1];
        err_fd = stdio_fds[2];
        console_fd = -1;
    }
    int status = wait_for_command(child, out_fd, err_fd);
    mark(PHASE_EXITED);
    report_and_reboot(status);
    return 0;
}
