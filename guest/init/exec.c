/*
 * krun guest init: the exec agent, another process in the running guest on the host's request
 * (`krun oci exec`, which `podman exec` and `ctr task exec` call).
 *
 * A child of init listens on the guest vsock port the configuration names ("exec_port"); the VMM maps it
 * to a unix socket of the host (a VsockPort listen map), so only the host reaches it. Each connection is
 * one session, served by a process of its own: it reads one EXEC request, starts the process it describes
 * and relays its standard streams until it ends, then reports its exit status and closes.
 *
 * Frames, both ways: a type byte, a 4-byte big-endian payload length, the payload.
 *   host to guest:
 *     1 EXEC         once, first: u32 flags (1: terminal), u32 uid, u32 gid, u16 columns, u16 rows,
 *                    u16 ngroups, u16 argc, u16 envc, then ngroups u32 group ids, then NUL-terminated
 *                    strings: the working directory, argc arguments, envc NAME=VALUE (at most EXEC_MAX_REQUEST)
 *     2 STDIN        bytes for the process's standard input (at most FRAME_MAX_DATA)
 *     3 STDIN_CLOSE  end of its standard input (pipes only: a terminal has none)
 *     4 SIGNAL       u32 signal number, for the process
 *     5 RESIZE       u16 columns, u16 rows of its terminal
 *   guest to host:
 *     0x81 STARTED   u32 the process's guest pid: it runs
 *     0x82 STDOUT    bytes it wrote (1 to FRAME_MAX_DATA; a terminal's output is all STDOUT)
 *     0x83 STDERR    bytes it wrote to standard error
 *     0x84 EXIT      u32 its status (its exit code, or 128 + the signal that ended it); the session ends
 *     0x85 ERROR     a one-line UTF-8 message (at most FRAME_MAX_ERROR bytes): it could not start; the
 *                    session ends
 * The host closing the connection before EXIT kills the process (and its process group): its relay, which
 * the engine watches as the exec'd process, is gone.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "exec.h"

/* linux/vm_sockets.h, which musl does not carry */
#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#define VMADDR_CID_ANY 0xffffffffU
struct sockaddr_vm {
    sa_family_t svm_family;
    unsigned short svm_reserved1;
    unsigned int svm_port;
    unsigned int svm_cid;
    unsigned char svm_flags;
    unsigned char svm_zero[3];
};

enum {
    T_EXEC = 1, T_STDIN = 2, T_STDIN_CLOSE = 3, T_SIGNAL = 4, T_RESIZE = 5,
    T_STARTED = 0x81, T_STDOUT = 0x82, T_STDERR = 0x83, T_EXIT = 0x84, T_ERROR = 0x85,
};

#define EXEC_MAX_REQUEST (1 << 20)
#define FRAME_MAX_DATA (64 << 10)
#define FRAME_MAX_ERROR 1024
#define EXEC_MAX_SESSIONS 64
#define EXEC_MAX_GROUPS 64
#define EXEC_MAX_ITEMS 4096
#define EXEC_HEADER 22

extern char **environ;

static void klog(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void klog(const char *fmt, ...)
{
    char buf[300];
    va_list ap;
    int n = snprintf(buf, sizeof buf, "krun-init: exec: ");
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = sizeof buf - 2;
    buf[n++] = '\n';
    int fd = open("/dev/kmsg", O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (write(fd, buf, n) < 0) {
            /* nowhere else to say it */
        }
        close(fd);
    }
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += r;
    }
    return 0;
}

static int write_full(int fd, const void *buf, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(fd, (const char *)buf + done, n - done, MSG_NOSIGNAL);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        done += r;
    }
    return 0;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static uint32_t get32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static int send_frame(int fd, int type, const void *payload, size_t len)
{
    unsigned char h[5];
    h[0] = (unsigned char)type;
    put32(h + 1, (uint32_t)len);
    return write_full(fd, h, 5) || (len && write_full(fd, payload, len)) ? -1 : 0;
}

static int send_u32(int fd, int type, uint32_t v)
{
    unsigned char b[4];
    put32(b, v);
    return send_frame(fd, type, b, 4);
}

static void send_error(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void send_error(int fd, const char *fmt, ...)
{
    char msg[FRAME_MAX_ERROR];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        n = 0;
    if (n >= (int)sizeof msg)
        n = sizeof msg - 1;
    send_frame(fd, T_ERROR, msg, n);
}

/* One request, parsed in place: the strings point into its buffer. */
struct request {
    unsigned char *buf;
    int terminal;
    uid_t uid;
    gid_t gid;
    unsigned columns, rows;
    gid_t groups[EXEC_MAX_GROUPS];
    int ngroups;
    char *cwd;
    char **argv;
    char **envp;
};

/* The next NUL-terminated string at *p, before end; NULL when there is none. */
static char *next_string(unsigned char **p, unsigned char *end)
{
    unsigned char *nul = memchr(*p, 0, end - *p);
    if (!nul)
        return NULL;
    char *s = (char *)*p;
    *p = nul + 1;
    return s;
}

/* 0, or -1 with a message in `why`. */
static int parse_request(struct request *r, unsigned char *buf, size_t len, const char **why)
{
    *why = "the request is malformed";
    if (len < EXEC_HEADER)
        return -1;
    r->buf = buf;
    r->terminal = get32(buf) & 1;
    r->uid = get32(buf + 4);
    r->gid = get32(buf + 8);
    r->columns = get16(buf + 12);
    r->rows = get16(buf + 14);
    r->ngroups = get16(buf + 16);
    unsigned argc = get16(buf + 18), envc = get16(buf + 20);
    if (r->ngroups > EXEC_MAX_GROUPS || argc < 1 || argc > EXEC_MAX_ITEMS || envc > EXEC_MAX_ITEMS)
        return -1;
    unsigned char *p = buf + EXEC_HEADER, *end = buf + len;
    if ((size_t)(end - p) < 4u * r->ngroups)
        return -1;
    for (int i = 0; i < r->ngroups; i++, p += 4)
        r->groups[i] = get32(p);
    r->argv = calloc(argc + 1, sizeof(char *));
    r->envp = calloc(envc + 1, sizeof(char *));
    if (!r->argv || !r->envp) {
        *why = "no memory for the request";
        return -1;
    }
    if (!(r->cwd = next_string(&p, end)) || r->cwd[0] != '/')
        return -1;
    for (unsigned i = 0; i < argc; i++)
        if (!(r->argv[i] = next_string(&p, end)))
            return -1;
    for (unsigned i = 0; i < envc; i++)
        if (!(r->envp[i] = next_string(&p, end)))
            return -1;
    if (p != end || !r->argv[0][0])
        return -1;
    return 0;
}

/* What the child tells its parent when it cannot exec: the step that failed and errno. */
enum step { STEP_TERMINAL = 1, STEP_USER, STEP_CWD, STEP_EXEC };

static void child_fail(int errfd, enum step step)
{
    int report[2] = {step, errno};
    if (write(errfd, report, sizeof report) < 0) {
        /* the parent then sees a start without exec: status 127 */
    }
    _exit(step == STEP_EXEC && (report[1] == ENOENT || report[1] == ENOTDIR) ? 127 : 126);
}

static void run_child(struct request *r, int fds[3], const char *slave, int errfd)
{
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    setsid();
    if (slave) {
        int t = open(slave, O_RDWR);
        if (t < 0 || ioctl(t, TIOCSCTTY, 0) < 0)
            child_fail(errfd, STEP_TERMINAL);
        fds[0] = fds[1] = fds[2] = t;
    }
    for (int i = 0; i < 3; i++)
        if (dup2(fds[i], i) < 0)
            child_fail(errfd, STEP_TERMINAL);
    if (setgroups(r->ngroups, r->groups) || setgid(r->gid) || setuid(r->uid))
        child_fail(errfd, STEP_USER);
    if (chdir(r->cwd))
        child_fail(errfd, STEP_CWD);
    environ = r->envp; /* execvp searches the request's PATH */
    execvp(r->argv[0], r->argv);
    child_fail(errfd, STEP_EXEC);
}

/* The one-line reason a process could not start, in the words engines recognise (runc's). */
static void report_start_failure(int sock, struct request *r, int step, int err)
{
    switch (step) {
    case STEP_TERMINAL:
        send_error(sock, "cannot set up the terminal: %s", strerror(err));
        break;
    case STEP_USER:
        send_error(sock, "cannot run as user %u:%u: %s", (unsigned)r->uid, (unsigned)r->gid, strerror(err));
        break;
    case STEP_CWD:
        send_error(sock, "chdir to cwd (\"%s\") set in config.json failed: %s", r->cwd, strerror(err));
        break;
    default:
        if ((err == ENOENT || err == ENOTDIR) && !strchr(r->argv[0], '/'))
            send_error(sock, "exec: \"%s\": executable file not found in $PATH", r->argv[0]);
        else if (err == EACCES)
            send_error(sock, "exec: \"%s\": permission denied", r->argv[0]);
        else
            send_error(sock, "exec: \"%s\": %s", r->argv[0], strerror(err));
    }
}

static void set_nonblocking(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

/* Reads what fd has (up to a frame) and sends it; -1 at its end. */
static int forward_output(int fd, int sock, int type)
{
    static unsigned char buf[16 << 10];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n > 0)
        return send_frame(sock, type, buf, n) ? -2 : 0;
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    return -1; /* end of file, or EIO: a terminal whose every slave end closed */
}

static int exit_status(int w)
{
    return WIFEXITED(w) ? WEXITSTATUS(w) : 128 + WTERMSIG(w);
}

/* One session: the request, the process, its streams until it ends. Never returns. */
static void serve_session(int sock)
{
    signal(SIGPIPE, SIG_IGN); /* a process that closed its input: the write fails with EPIPE instead */
    unsigned char h[5];
    if (read_full(sock, h, 5) || h[0] != T_EXEC) {
        send_error(sock, "the first request is not EXEC");
        _exit(1);
    }
    uint32_t len = get32(h + 1);
    if (len > EXEC_MAX_REQUEST) {
        send_error(sock, "the request is larger than %d bytes", EXEC_MAX_REQUEST);
        _exit(1);
    }
    unsigned char *buf = malloc(len ? len : 1);
    struct request r = {0};
    const char *why = "no memory for the request";
    if (!buf || read_full(sock, buf, len) || parse_request(&r, buf, len, &why)) {
        send_error(sock, "%s", why);
        _exit(1);
    }

    int master = -1, in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1}, errpipe[2];
    char slave[64] = "";
    int child_fds[3];
    if (r.terminal) {
        master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
        if (master < 0 || grantpt(master) || unlockpt(master) || ptsname_r(master, slave, sizeof slave)) {
            send_error(sock, "cannot open a terminal: %s", strerror(errno));
            _exit(1);
        }
        if (r.columns && r.rows) {
            struct winsize ws = {.ws_row = r.rows, .ws_col = r.columns};
            ioctl(master, TIOCSWINSZ, &ws);
        }
    } else if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
        send_error(sock, "cannot make pipes: %s", strerror(errno));
        _exit(1);
    }
    child_fds[0] = in[0];
    child_fds[1] = out[1];
    child_fds[2] = err[1];
    if (pipe2(errpipe, O_CLOEXEC)) {
        send_error(sock, "cannot make a pipe: %s", strerror(errno));
        _exit(1);
    }
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    int sigfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    pid_t child = sigfd < 0 ? -1 : fork();
    if (child < 0) {
        send_error(sock, "cannot start a process: %s", strerror(errno));
        _exit(1);
    }
    if (child == 0) {
        close(sock);
        close(errpipe[0]);
        run_child(&r, child_fds, r.terminal ? slave : NULL, errpipe[1]);
    }
    close(errpipe[1]);
    if (!r.terminal) {
        close(in[0]);
        close(out[1]);
        close(err[1]);
    }
    int report[2];
    ssize_t got;
    while ((got = read(errpipe[0], report, sizeof report)) < 0 && errno == EINTR)
        ;
    close(errpipe[0]);
    if (got == (ssize_t)sizeof report) {
        int w;
        waitpid(child, &w, 0);
        report_start_failure(sock, &r, report[0], report[1]);
        _exit(1);
    }
    if (send_u32(sock, T_STARTED, (uint32_t)child)) {
        kill(-child, SIGKILL);
        _exit(1);
    }

    int stdin_fd = r.terminal ? master : in[1];
    int out_fd = r.terminal ? master : out[0];
    int err_fd = r.terminal ? -1 : err[0];
    set_nonblocking(stdin_fd);
    set_nonblocking(out_fd);
    if (err_fd >= 0)
        set_nonblocking(err_fd);
    static unsigned char pending[FRAME_MAX_DATA];
    size_t pending_len = 0, pending_off = 0;
    int stdin_closing = 0, exited = 0, status = 0;

    while (!exited) {
        if (!pending_len && stdin_closing && stdin_fd >= 0 && stdin_fd != master) {
            close(stdin_fd); /* all the input given went in: its end is the process's end of file */
            stdin_fd = -1;
        }
        struct pollfd p[5] = {
            {.fd = pending_len ? -1 : sock, .events = POLLIN},
            {.fd = pending_len ? stdin_fd : -1, .events = POLLOUT},
            {.fd = out_fd, .events = POLLIN},
            {.fd = err_fd, .events = POLLIN},
            {.fd = sigfd, .events = POLLIN},
        };
        if (poll(p, 5, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[4].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sigfd, &si, sizeof si) > 0)
                ;
            int w;
            if (waitpid(child, &w, WNOHANG) == child) {
                status = exit_status(w);
                exited = 1;
            }
        }
        if (p[2].revents) {
            int rc = forward_output(out_fd, sock, T_STDOUT);
            if (rc == -2)
                goto host_gone;
            if (rc < 0) {
                if (out_fd != stdin_fd)
                    close(out_fd);
                out_fd = -1;
            }
        }
        if (p[3].revents) {
            int rc = forward_output(err_fd, sock, T_STDERR);
            if (rc == -2)
                goto host_gone;
            if (rc < 0) {
                close(err_fd);
                err_fd = -1;
            }
        }
        if (p[1].revents) {
            ssize_t n = write(stdin_fd, pending + pending_off, pending_len - pending_off);
            if (n > 0) {
                pending_off += n;
                if (pending_off == pending_len)
                    pending_len = pending_off = 0;
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                pending_len = pending_off = 0; /* the process closed its input: what is left goes nowhere */
            }
        }
        if (p[0].revents) {
            if (read_full(sock, h, 5))
                goto host_gone;
            len = get32(h + 1);
            if (len > FRAME_MAX_DATA)
                goto host_gone; /* the host never sends such a frame */
            if (read_full(sock, pending, len))
                goto host_gone;
            if (h[0] == T_STDIN) {
                if (stdin_fd >= 0 && !stdin_closing) {
                    pending_len = len;
                    pending_off = 0;
                }
            } else if (h[0] == T_STDIN_CLOSE) {
                stdin_closing = 1;
            } else if (h[0] == T_SIGNAL && len == 4) {
                uint32_t sig = get32(pending);
                if (sig > 0 && sig < NSIG)
                    kill(child, (int)sig);
            } else if (h[0] == T_RESIZE && len == 4 && master >= 0) {
                struct winsize ws = {.ws_row = get16(pending + 2), .ws_col = get16(pending)};
                ioctl(master, TIOCSWINSZ, &ws);
            }
        }
    }
    if (!exited)
        goto host_gone;
    /* What the process wrote before it ended is in its pipes (or terminal): send it, without waiting for
     * processes it left behind that still hold them open. */
    for (int fd, type = T_STDOUT; type <= T_STDERR; type++) {
        fd = type == T_STDOUT ? out_fd : err_fd;
        if (fd < 0)
            continue;
        int rc;
        while ((rc = forward_output(fd, sock, type)) == 0) {
            struct pollfd q = {.fd = fd, .events = POLLIN};
            if (poll(&q, 1, 0) <= 0)
                break;
        }
        if (rc == -2)
            _exit(1);
    }
    send_u32(sock, T_EXIT, (uint32_t)status);
    shutdown(sock, SHUT_WR);
    _exit(0);
host_gone:
    /* The host's relay is gone: so is the process (and what it started in its session). */
    kill(-child, SIGKILL);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);
    _exit(1);
}

static void on_sigchld(int sig)
{
    (void)sig; /* only to interrupt accept */
}

void exec_agent_serve(int listener)
{
    int sessions = 0;
    struct sigaction sa = {.sa_handler = on_sigchld}; /* no SA_RESTART: accept returns EINTR */
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        int w;
        while (waitpid(-1, &w, WNOHANG) > 0)
            sessions--;
        int c = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
        if (c < 0) {
            if (errno != EINTR) {
                struct timespec ts = {0, 10 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (sessions >= EXEC_MAX_SESSIONS) {
            send_error(c, "too many exec sessions (%d) in this container", EXEC_MAX_SESSIONS);
            close(c);
            continue;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(listener);
            signal(SIGCHLD, SIG_DFL);
            serve_session(c);
        }
        if (pid > 0)
            sessions++;
        close(c);
    }
}

pid_t start_exec_agent(unsigned port)
{
    pid_t pid = fork();
    if (pid != 0) {
        if (pid < 0)
            klog("cannot start the agent: %s", strerror(errno));
        return pid;
    }
    /* Nothing of init's: its descriptors (console ports, the marker port) and signal state. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++)
        signal(s, SIG_DFL);
    int null = open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++)
        if (null >= 0 && null != fd)
            dup2(null, fd);
    for (int fd = 3; fd < 1024; fd++)
        close(fd);
    int listener = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_vm a = {.svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY, .svm_port = port};
    if (listener < 0 || bind(listener, (struct sockaddr *)&a, sizeof a) || listen(listener, 16)) {
        klog("cannot listen on vsock port %u: %s", port, strerror(errno));
        _exit(1);
    }
    exec_agent_serve(listener);
    _exit(0);
}
