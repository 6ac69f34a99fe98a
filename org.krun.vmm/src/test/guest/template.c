/*
 * template.c: the guest side of krun's template protocol (docs/templates.md), without Linux. It does what
 * krun's init does at its template point: writes 1 to port 0xf6, polls 0xf6 until the VMM answers 1 (a VM
 * being made into a template is paused and snapshotted inside this loop; every VM restored from the template
 * wakes up in it), then reads its run's configuration from port 0xf7: a 4-byte little-endian length and that
 * many bytes of JSON. It prints "boot" on the serial line before the template point (so a restored VM, which
 * starts after it, prints no such line), then "config " and the JSON, a line "end", and exits with status 0x05.
 */
#include "guest.h"

#define TEMPLATE_PORT 0xf6
#define CONFIG_PORT 0xf7
/* A configuration longer than this is not krun's: print that much and say so. */
#define MAX_CONFIG 65536

int main(void)
{
    serial_puts("boot\n");
    outb(TEMPLATE_PORT, 1);
    while (inb(TEMPLATE_PORT) != 1) {
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; i++) {
        length |= (uint32_t)inb(CONFIG_PORT) << (8 * i);
    }
    serial_puts("config ");
    char one[2] = {0, 0};
    for (uint32_t i = 0; i < length && i < MAX_CONFIG; i++) {
        one[0] = (char)inb(CONFIG_PORT);
        serial_puts(one);
    }
    serial_puts(length > MAX_CONFIG ? "\ntoo long\n" : "\nend\n");
    return 0x05;
}
