/*
 * probe.elf: reports the virtio-mmio devices krun gave the VM. It drives the console at slot 0 (see
 * vconsole.h) and reads its options from the kernel command line (krun's VmConfig.kernelArgs):
 *   probe.say=WORD   print "WORD\n" first
 *   probe.wait       print "waiting\n", then wait for a line of console input and echo it
 *   probe.status=N   exit with N (0-255) instead of the number of devices found
 * Then it reads every slot (device n at 0xd0000000 + n * 0x1000: magic "virt" at offset 0, device id at
 * offset 8; an empty slot reads all ones), prints "devices: ID ID ...\n" in slot order and exits.
 * Exit status 0xee: the console at slot 0 could not be set up.
 */
#include "guest.h"
#include "vconsole.h"
#include "virtio_mmio.h"

#define ZERO_PAGE 0x7000UL
#define ZERO_PAGE_CMD_LINE_PTR 0x228
#define SLOTS 24
#define STATUS_NO_CONSOLE 0xee

static char line[64];
static char report[8 + SLOTS * 11 + 2];

/* Whether s starts with prefix; *rest is what follows it. */
static int starts_with(const char *s, const char *prefix, const char **rest)
{
    while (*prefix) {
        if (*s++ != *prefix++) {
            return 0;
        }
    }
    *rest = s;
    return 1;
}

static int append_decimal(char *out, int at, uint32_t value)
{
    char digits[10];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) {
        out[at++] = digits[--n];
    }
    return at;
}

int main(void)
{
    const char *say = 0;
    int say_len = 0;
    int wait = 0;
    int status = -1;
    const char *c = (const char *)(uint64_t)*(volatile uint32_t *)(ZERO_PAGE + ZERO_PAGE_CMD_LINE_PTR);
    while (*c) {
        while (*c == ' ') {
            c++;
        }
        const char *rest;
        if (starts_with(c, "probe.say=", &rest)) {
            say = rest;
            while (rest[say_len] && rest[say_len] != ' ') {
                say_len++;
            }
        } else if (starts_with(c, "probe.status=", &rest)) {
            status = 0;
            while (*rest >= '0' && *rest <= '9') {
                status = status * 10 + (*rest++ - '0');
            }
        } else if (starts_with(c, "probe.wait", &rest) && (*rest == ' ' || *rest == 0)) {
            wait = 1;
        }
        while (*c && *c != ' ') {
            c++;
        }
    }

    if (vconsole_init() != 0) {
        return STATUS_NO_CONSOLE;
    }
    if (say) {
        vconsole_write(say, (uint32_t)say_len);
        vconsole_puts("\n");
    }
    if (wait) {
        vconsole_puts("waiting\n");
        vconsole_read_line(line, sizeof(line));
        vconsole_puts(line);
    }
    int at = 0;
    for (const char *p = "devices:"; *p; p++) {
        report[at++] = *p;
    }
    int found = 0;
    for (int n = 0; n < SLOTS; n++) {
        uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)n * VIRTIO_MMIO_SIZE;
        if (mmio_read32(base + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC) {
            report[at++] = ' ';
            at = append_decimal(report, at, mmio_read32(base + VIRTIO_MMIO_DEVICE_ID));
            found++;
        }
    }
    report[at++] = '\n';
    vconsole_write(report, (uint32_t)at);
    return status >= 0 ? status & 0xff : found;
}
