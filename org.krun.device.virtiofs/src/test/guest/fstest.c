/*
 * fstest: POSIX filesystem behaviour, op by op, run inside a krun guest on a virtio-fs share.
 * Prints one line per check: "PASS name" or "FAIL name: detail", and a final "DONE passed=N failed=M".
 * Usage: fstest DIR   (an empty directory on the share; everything happens inside it)
 *
 * Each check names the errno it expects where an operation must fail: the filesystem must give exactly
 * what a local filesystem gives.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

/* musl has no renameat2 wrapper: the system call itself. */
#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE 1
#define RENAME_EXCHANGE 2
#endif
static int rename2(const char *from, const char *to, unsigned flags)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, from, AT_FDCWD, to, flags);
}

static int passed, failed;

static void check(int ok, const char *name, const char *fmt, ...)
{
    if (ok) {
        printf("PASS %s\n", name);
        passed++;
        return;
    }
    char detail[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    printf("FAIL %s: %s\n", name, detail);
    failed++;
}

/* The operation must fail with exactly `want`. */
static void expect_errno(int rc, int want, const char *name)
{
    int e = errno;
    check(rc < 0 && e == want, name, "rc=%d errno=%d (%s), want %d (%s)", rc, rc < 0 ? e : 0,
          rc < 0 ? strerror(e) : "none", want, strerror(want));
}

static int write_file(const char *path, const char *data, int flags, mode_t mode)
{
    int fd = open(path, flags, mode);
    if (fd < 0)
        return -1;
    ssize_t n = write(fd, data, strlen(data));
    close(fd);
    return n == (ssize_t)strlen(data) ? 0 : -1;
}

static int read_file(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, size - 1);
    close(fd);
    if (n < 0)
        return -1;
    buf[n] = 0;
    return (int)n;
}

static void test_open_flags(void)
{
    char buf[64];
    check(write_file("f1", "hello", O_CREAT | O_WRONLY, 0644) == 0, "create_write", "errno %d", errno);
    check(read_file("f1", buf, sizeof buf) == 5 && !strcmp(buf, "hello"), "read_back", "got '%s'", buf);
    expect_errno(open("f1", O_CREAT | O_EXCL | O_WRONLY, 0644), EEXIST, "o_excl_existing_eexist");
    expect_errno(open("nonexistent", O_RDONLY), ENOENT, "open_missing_enoent");
    check(write_file("f1", "xy", O_WRONLY | O_TRUNC, 0) == 0 && read_file("f1", buf, sizeof buf) == 2
              && !strcmp(buf, "xy"), "o_trunc", "got '%s'", buf);
    check(write_file("f1", "zz", O_WRONLY | O_APPEND, 0) == 0 && read_file("f1", buf, sizeof buf) == 4
              && !strcmp(buf, "xyzz"), "o_append", "got '%s'", buf);
    int fd = open("f1", O_RDONLY);
    expect_errno((int)write(fd, "a", 1), EBADF, "write_readonly_fd_ebadf");
    close(fd);
    expect_errno(open("f1/x", O_RDONLY), ENOTDIR, "open_through_file_enotdir");
    mkdir("d_open", 0755);
    expect_errno(open("d_open", O_WRONLY), EISDIR, "open_dir_for_write_eisdir");
    int dfd = open("d_open", O_RDONLY | O_DIRECTORY);
    check(dfd >= 0, "open_directory_flag", "errno %d", errno);
    close(dfd);
    expect_errno(open("f1", O_RDONLY | O_DIRECTORY), ENOTDIR, "o_directory_on_file_enotdir");
    struct stat st;
    int cfd = open("f_mode", O_CREAT | O_WRONLY, 0640);
    close(cfd);
    check(stat("f_mode", &st) == 0 && (st.st_mode & 0777) == (0640 & ~022 & 0777), "create_mode_umask",
          "mode %o", st.st_mode & 0777);
    /* pwrite past the end leaves a hole of zeroes */
    fd = open("f_pw", O_CREAT | O_RDWR, 0644);
    check(pwrite(fd, "Z", 1, 100) == 1 && fstat(fd, &st) == 0 && st.st_size == 101, "pwrite_extends",
          "size %ld", (long)st.st_size);
    char c = 1;
    check(pread(fd, &c, 1, 50) == 1 && c == 0, "hole_reads_zero", "byte %d", c);
    close(fd);
}

static void test_rename(void)
{
    char buf[64];
    write_file("r_a", "A", O_CREAT | O_WRONLY, 0644);
    write_file("r_b", "B", O_CREAT | O_WRONLY, 0644);
    check(rename("r_a", "r_b") == 0 && read_file("r_b", buf, sizeof buf) == 1 && buf[0] == 'A'
              && access("r_a", F_OK) < 0, "rename_over_file", "b='%s'", buf);
    mkdir("r_d1", 0755);
    mkdir("r_d2", 0755);
    check(rename("r_d1", "r_d2") == 0 && access("r_d1", F_OK) < 0, "rename_dir_over_empty_dir", "errno %d", errno);
    mkdir("r_d3", 0755);
    write_file("r_d2/inner", "i", O_CREAT | O_WRONLY, 0644);
    expect_errno(rename("r_d3", "r_d2"), ENOTEMPTY, "rename_over_nonempty_dir_enotempty");
    expect_errno(rename("r_b", "r_d3"), EISDIR, "rename_file_over_dir_eisdir");
    expect_errno(rename("r_d3", "r_b"), ENOTDIR, "rename_dir_over_file_enotdir");
    mkdir("r_x", 0755);
    mkdir("r_y", 0755);
    write_file("r_x/moved", "M", O_CREAT | O_WRONLY, 0644);
    check(rename("r_x/moved", "r_y/moved") == 0 && read_file("r_y/moved", buf, sizeof buf) == 1,
          "rename_across_dirs", "errno %d", errno);
    expect_errno(rename("r_x", "r_x/sub"), EINVAL, "rename_dir_into_itself_einval");
    write_file("r_n1", "1", O_CREAT | O_WRONLY, 0644);
    write_file("r_n2", "2", O_CREAT | O_WRONLY, 0644);
    expect_errno(rename2("r_n1", "r_n2", RENAME_NOREPLACE), EEXIST, "rename_noreplace_eexist");
    check(rename2("r_n1", "r_n2", RENAME_EXCHANGE) == 0 && read_file("r_n1", buf, sizeof buf) == 1
              && buf[0] == '2', "rename_exchange", "r_n1='%s' errno %d", buf, errno);
}

static void test_links(void)
{
    struct stat st;
    char buf[256];
    write_file("l_f", "data", O_CREAT | O_WRONLY, 0644);
    check(link("l_f", "l_h") == 0 && stat("l_f", &st) == 0 && st.st_nlink == 2, "hard_link_count", "nlink %ld",
          (long)st.st_nlink);
    struct stat st2;
    stat("l_h", &st2);
    check(st.st_ino == st2.st_ino, "hard_link_same_inode", "%lu vs %lu", (unsigned long)st.st_ino,
          (unsigned long)st2.st_ino);
    unlink("l_h");
    check(stat("l_f", &st) == 0 && st.st_nlink == 1, "unlink_drops_link_count", "nlink %ld", (long)st.st_nlink);
    mkdir("l_dir", 0755);
    expect_errno(link("l_dir", "l_dir2"), EPERM, "hard_link_dir_eperm");
    expect_errno(link("l_f", "l_f"), EEXIST, "hard_link_existing_eexist");
    check(symlink("l_f", "l_s") == 0, "symlink", "errno %d", errno);
    ssize_t n = readlink("l_s", buf, sizeof buf);
    check(n == 3 && !memcmp(buf, "l_f", 3), "readlink", "n=%ld", (long)n);
    check(lstat("l_s", &st) == 0 && S_ISLNK(st.st_mode) && st.st_size == 3, "lstat_symlink", "mode %o",
          st.st_mode);
    check(read_file("l_s", buf, sizeof buf) == 4 && !strcmp(buf, "data"), "read_through_symlink", "'%s'", buf);
    symlink("/etc/hostname", "l_abs");
    n = readlink("l_abs", buf, sizeof buf);
    check(n == 13 && !memcmp(buf, "/etc/hostname", 13), "absolute_symlink_target_kept", "n=%ld", (long)n);
    symlink("dangling-target", "l_dangling");
    expect_errno(open("l_dangling", O_RDONLY), ENOENT, "dangling_symlink_enoent");
    expect_errno((int)readlink("l_f", buf, sizeof buf), EINVAL, "readlink_not_symlink_einval");
    symlink("l_loop2", "l_loop1");
    symlink("l_loop1", "l_loop2");
    expect_errno(open("l_loop1", O_RDONLY), ELOOP, "symlink_loop_eloop");
}

static void test_unlink_open(void)
{
    char buf[16];
    write_file("u_f", "still here", O_CREAT | O_WRONLY, 0644);
    int fd = open("u_f", O_RDONLY);
    check(unlink("u_f") == 0 && access("u_f", F_OK) < 0, "unlink_open_file", "errno %d", errno);
    ssize_t n = read(fd, buf, sizeof buf - 1);
    buf[n > 0 ? n : 0] = 0;
    check(n == 10 && !strcmp(buf, "still here"), "read_after_unlink", "n=%ld", (long)n);
    struct stat st;
    check(fstat(fd, &st) == 0 && st.st_nlink == 0, "fstat_after_unlink_nlink0", "nlink %ld", (long)st.st_nlink);
    close(fd);
}

static void test_dirs(void)
{
    check(mkdir("m_d", 0750) == 0, "mkdir", "errno %d", errno);
    struct stat st;
    check(stat("m_d", &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0777) == 0750, "mkdir_mode", "mode %o",
          st.st_mode & 0777);
    expect_errno(mkdir("m_d", 0755), EEXIST, "mkdir_existing_eexist");
    expect_errno(mkdir("m_missing/sub", 0755), ENOENT, "mkdir_missing_parent_enoent");
    write_file("m_d/f", "x", O_CREAT | O_WRONLY, 0644);
    expect_errno(rmdir("m_d"), ENOTEMPTY, "rmdir_nonempty_enotempty");
    expect_errno(rmdir("m_d/f"), ENOTDIR, "rmdir_file_enotdir");
    expect_errno(unlink("m_d"), EISDIR, "unlink_dir_eisdir");
    unlink("m_d/f");
    check(rmdir("m_d") == 0, "rmdir_empty", "errno %d", errno);
    expect_errno(rmdir("m_d"), ENOENT, "rmdir_missing_enoent");
    mkdir("m_parent", 0755);
    stat("m_parent", &st);
    long before = (long)st.st_nlink;
    mkdir("m_parent/child", 0755);
    stat("m_parent", &st);
    check((long)st.st_nlink == before + 1, "subdir_bumps_parent_nlink", "%ld -> %ld", before, (long)st.st_nlink);
}

static void test_attrs(void)
{
    struct stat st;
    write_file("a_f", "0123456789", O_CREAT | O_WRONLY, 0644);
    check(chmod("a_f", 0600) == 0 && stat("a_f", &st) == 0 && (st.st_mode & 0777) == 0600, "chmod", "mode %o",
          st.st_mode & 0777);
    check(chmod("a_f", 04755) == 0 && stat("a_f", &st) == 0 && (st.st_mode & 07777) == 04755, "chmod_setuid",
          "mode %o", st.st_mode & 07777);
    check(chown("a_f", 1234, 5678) == 0 && stat("a_f", &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678, "chown",
          "uid %d gid %d errno %d", st.st_uid, st.st_gid, errno);
    struct timespec ts[2] = {{1000000000, 123456789}, {1200000000, 987654321}};
    check(utimensat(AT_FDCWD, "a_f", ts, 0) == 0 && stat("a_f", &st) == 0 && st.st_atim.tv_sec == 1000000000
              && st.st_mtim.tv_sec == 1200000000 && st.st_mtim.tv_nsec == 987654321,
          "utimes_nanoseconds", "mtime %ld.%09ld", (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    check(truncate("a_f", 4) == 0 && stat("a_f", &st) == 0 && st.st_size == 4, "truncate_shrink", "size %ld",
          (long)st.st_size);
    check(truncate("a_f", 8192) == 0 && stat("a_f", &st) == 0 && st.st_size == 8192, "truncate_grow", "size %ld",
          (long)st.st_size);
    int fd = open("a_f", O_RDWR);
    check(ftruncate(fd, 1) == 0 && fstat(fd, &st) == 0 && st.st_size == 1, "ftruncate", "size %ld", (long)st.st_size);
    close(fd);
    expect_errno(truncate("a_missing", 1), ENOENT, "truncate_missing_enoent");
}

static void test_sparse(void)
{
    int fd = open("s_f", O_CREAT | O_RDWR | O_TRUNC, 0644);
    char block[4096];
    memset(block, 'S', sizeof block);
    pwrite(fd, block, sizeof block, 0);
    pwrite(fd, block, sizeof block, 1024 * 1024);
    off_t hole = lseek(fd, 0, SEEK_HOLE);
    off_t data = lseek(fd, 4096, SEEK_DATA);
    check(hole >= 4096 && hole < 1024 * 1024, "seek_hole", "hole at %ld", (long)hole);
    check(data == 1024 * 1024, "seek_data", "data at %ld", (long)data);
    struct stat st;
    fstat(fd, &st);
    check(st.st_blocks * 512 < 512 * 1024, "sparse_blocks", "blocks %ld", (long)st.st_blocks);
    check(fallocate(fd, 0, 2 * 1024 * 1024, 65536) == 0 && fstat(fd, &st) == 0 && st.st_size == 2 * 1024 * 1024 + 65536,
          "fallocate_extends", "size %ld errno %d", (long)st.st_size, errno);
    check(fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0
              && lseek(fd, 0, SEEK_DATA) >= 4096, "fallocate_punch_hole", "errno %d", errno);
    expect_errno((int)lseek(fd, 3 * 1024 * 1024, SEEK_DATA), ENXIO, "seek_data_past_end_enxio");
    close(fd);
}

static void test_xattrs(void)
{
    write_file("x_f", "x", O_CREAT | O_WRONLY, 0644);
    check(setxattr("x_f", "user.krun_test", "value1", 6, 0) == 0, "setxattr", "errno %d", errno);
    char buf[64];
    ssize_t n = getxattr("x_f", "user.krun_test", buf, sizeof buf);
    check(n == 6 && !memcmp(buf, "value1", 6), "getxattr", "n=%ld errno %d", (long)n, errno);
    check(getxattr("x_f", "user.krun_test", NULL, 0) == 6, "getxattr_size", "errno %d", errno);
    expect_errno((int)getxattr("x_f", "user.krun_test", buf, 2), ERANGE, "getxattr_small_buffer_erange");
    expect_errno(setxattr("x_f", "user.krun_test", "v", 1, XATTR_CREATE), EEXIST, "setxattr_create_existing_eexist");
    expect_errno(setxattr("x_f", "user.other", "v", 1, XATTR_REPLACE), ENODATA, "setxattr_replace_missing_enodata");
    check(setxattr("x_f", "trusted.krun", "t", 1, 0) == 0 && getxattr("x_f", "trusted.krun", buf, sizeof buf) == 1,
          "trusted_xattr_roundtrip", "errno %d", errno);
    char list[256];
    n = listxattr("x_f", list, sizeof list);
    int seen_user = 0, seen_trusted = 0;
    for (ssize_t i = 0; i < n; i += strlen(list + i) + 1) {
        seen_user |= !strcmp(list + i, "user.krun_test");
        seen_trusted |= !strcmp(list + i, "trusted.krun");
    }
    check(seen_user && seen_trusted, "listxattr", "n=%ld", (long)n);
    check(removexattr("x_f", "user.krun_test") == 0, "removexattr", "errno %d", errno);
    expect_errno((int)getxattr("x_f", "user.krun_test", buf, sizeof buf), ENODATA, "getxattr_removed_enodata");
}

static void test_locks(void)
{
    int fd = open("k_f", O_CREAT | O_RDWR, 0644);
    check(flock(fd, LOCK_EX) == 0, "flock_exclusive", "errno %d", errno);
    pid_t child = fork();
    if (child == 0) {
        int cfd = open("k_f", O_RDWR);
        int r = flock(cfd, LOCK_EX | LOCK_NB);
        _exit(r < 0 && errno == EWOULDBLOCK ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "flock_conflict_ewouldblock", "child status %d", status);
    flock(fd, LOCK_UN);

    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 100};
    check(fcntl(fd, F_SETLK, &fl) == 0, "fcntl_setlk", "errno %d", errno);
    child = fork();
    if (child == 0) {
        int cfd = open("k_f", O_RDWR);
        struct flock want = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 50, .l_len = 10};
        int r1 = fcntl(cfd, F_SETLK, &want);
        int e1 = errno;
        struct flock probe = want;
        int r2 = fcntl(cfd, F_GETLK, &probe);
        struct flock free_range = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 200, .l_len = 10};
        int r3 = fcntl(cfd, F_SETLK, &free_range);
        _exit(r1 < 0 && (e1 == EAGAIN || e1 == EACCES) && r2 == 0 && probe.l_type == F_WRLCK && r3 == 0 ? 0 : 1);
    }
    waitpid(child, &status, 0);
    check(WIFEXITED(status) && WEXITSTATUS(status) == 0, "fcntl_lock_conflict_and_getlk", "child status %d", status);
    close(fd);
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return x < y ? -1 : x > y;
}

/* Creates `entries` files in a new directory `dir`. */
static int make_dir_entries(const char *dir, int entries)
{
    char name[300];
    mkdir(dir, 0755);
    for (int i = 0; i < entries; i++) {
        snprintf(name, sizeof name, "%s/e%05d", dir, i);
        int fd = open(name, O_CREAT | O_WRONLY, 0644);
        if (fd < 0)
            return -1;
        close(fd);
    }
    return 0;
}

/*
 * Lists `dir`, which holds files e00000.. e<entries-1>: every entry exactly once, a telldir cookie taken
 * mid-way leads back to the same entry after seekdir, and rewinddir starts over.
 */
static void test_dir_listing(const char *label, const char *dir, int entries)
{
    char name[128];
    DIR *d = opendir(dir);
    if (!d) {
        snprintf(name, sizeof name, "%s_opendir", label);
        check(0, name, "errno %d", errno);
        return;
    }
    struct dirent *e;
    int count = 0;
    long *seen = calloc(entries + 1, sizeof(long));
    long mid_cookie = -1;
    char mid_name[256] = "";
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        if (count == entries / 2)
            strcpy(mid_name, e->d_name);
        if (count == entries / 2 - 1)
            mid_cookie = telldir(d);
        if (count < entries)
            seen[count] = atol(e->d_name + 1);
        count++;
    }
    snprintf(name, sizeof name, "%s_count", label);
    check(count == entries, name, "saw %d of %d", count, entries);
    qsort(seen, count < entries ? count : entries, sizeof(long), cmp_long);
    int unique = 1;
    for (int i = 0; i < count && i < entries; i++)
        unique &= seen[i] == i;
    snprintf(name, sizeof name, "%s_each_once", label);
    check(unique, name, "entries missing or repeated");
    seekdir(d, mid_cookie);
    e = readdir(d);
    snprintf(name, sizeof name, "%s_cookie_stable_after_seek", label);
    check(e && !strcmp(e->d_name, mid_name), name, "got '%s', want '%s'", e ? e->d_name : "(end)", mid_name);
    rewinddir(d);
    int again = 0;
    while ((e = readdir(d)))
        again += e->d_name[0] != '.';
    snprintf(name, sizeof name, "%s_rewind", label);
    check(again == entries, name, "saw %d", again);
    closedir(d);
    free(seen);
}

static void test_statfs(void)
{
    struct statfs s;
    memset(&s, 0, sizeof s);
    check(statfs(".", &s) == 0 && s.f_bsize > 0 && s.f_blocks > 0 && s.f_bavail <= s.f_blocks, "statfs",
          "bsize %ld blocks %ld", (long)s.f_bsize, (long)s.f_blocks);
}

int main(int argc, char **argv)
{
    if (argc < 2 || chdir(argv[1])) {
        fprintf(stderr, "usage: fstest DIR [BIGDIR ENTRIES] (DIR existing and empty; BIGDIR made by the host)\n");
        return 2;
    }
    umask(022);
    setvbuf(stdout, NULL, _IOLBF, 0);
    test_open_flags();
    test_rename();
    test_links();
    test_unlink_open();
    test_dirs();
    test_attrs();
    test_sparse();
    test_xattrs();
    test_locks();
    test_statfs();
    check(make_dir_entries("small", 200) == 0, "create_200_entries", "errno %d", errno);
    test_dir_listing("readdir_guest_made", "small", 200);
    if (argc > 3)
        test_dir_listing("readdir_large", argv[2], atoi(argv[3]));
    printf("DONE passed=%d failed=%d\n", passed, failed);
    return failed ? 1 : 0;
}
