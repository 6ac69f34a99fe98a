/*
 * memhog: takes memory in a krun guest, holds it until told to let go, then gives it back to the guest
 * kernel, for the balloon test (the host watches its RSS fall once the guest reports the memory free).
 *
 *   memhog MIB [populate|touch]
 *
 * Maps MIB MiB of anonymous memory and writes to every page: "populate" asks the kernel to fill the
 * mapping in one call (MAP_POPULATE), "touch" takes one page fault per page. Prints
 *   memhog: holding MIB MiB (populate, T ms)
 * then waits for a line on stdin, unmaps it all, prints "memhog: released", waits for one more line and
 * exits 0. Any failure prints "memhog: ..." on stderr and exits 1.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static long elapsed_ms(const struct timespec *from) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - from->tv_sec) * 1000 + (now.tv_nsec - from->tv_nsec) / 1000000;
}

static void wait_for_line(void) {
    char line[64];
    if (!fgets(line, sizeof line, stdin)) {
        fprintf(stderr, "memhog: stdin closed\n");
        exit(1);
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: memhog MIB [populate|touch]\n");
        return 1;
    }
    char *end;
    unsigned long mib = strtoul(argv[1], &end, 10);
    if (*end || mib == 0 || mib > (1UL << 20)) {
        fprintf(stderr, "memhog: bad size '%s'\n", argv[1]);
        return 1;
    }
    int populate = argc < 3 || strcmp(argv[2], "populate") == 0;
    size_t length = mib << 20;
    long page = sysconf(_SC_PAGESIZE);

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    unsigned char *p = mmap(NULL, length, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS | (populate ? MAP_POPULATE : 0), -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "memhog: mmap %lu MiB: %s\n", mib, strerror(errno));
        return 1;
    }
    /* Every page written: with MAP_POPULATE these are plain stores (the pages are there already). */
    for (size_t i = 0; i < length; i += page) {
        p[i] = (unsigned char) (i >> 12 | 1);
    }
    printf("memhog: holding %lu MiB (%s, %ld ms)\n", mib, populate ? "populate" : "touch", elapsed_ms(&start));
    fflush(stdout);

    wait_for_line();
    if (munmap(p, length) != 0) {
        fprintf(stderr, "memhog: munmap: %s\n", strerror(errno));
        return 1;
    }
    printf("memhog: released\n");
    fflush(stdout);
    wait_for_line();
    return 0;
}
