/*
 * template.c: the guest side of krun's template protocol (docs/templates.md), without Linux. It does what
 * krun's init does at its template point: writes 1 to port 0xf6, polls 0xf6 until the VMM answers 1 (a VM
 * being made into a template is paused and snapshotted inside this loop; every VM restored from the template
 * wakes up in it), then reads its run's configuration from port 0xf7: a 4-byte little-endian length and that
 * many bytes of JSON. It prints "boot" on the serial line before the template point (so a restored VM, which
 * starts after it, prints no such line), then "config " and the JSON, a line "end", and exits with status 0x05.
 * It also reads the configuration's MMIO window (0xd8000000, 8-byte loads) and prints "window same" when it
 * holds the same length and bytes as the port stream, "window differs at N" otherwise.
 */
#include "guest.h"

#define TEMPLATE_PORT 0xf6
#define CONFIG_PORT 0xf7
#define CONFIG_WINDOW 0xd8000000UL
/* A configuration longer than this is not krun's: print that much and say so. */
#define MAX_CONFIG 65536

static inline uint64_t mmio_read64(uint64_t address)
{
    return *(volatile uint64_t *)address;
}

/* The window's byte i (i counts from the length word's first byte). */
static uint8_t window_byte(uint32_t i)
{
    return (uint8_t)(mmio_read64(CONFIG_WINDOW + (i & ~7U)) >> (8 * (i & 7U)));
}

int main(void)
{
    map_mmio_window();
    serial_puts("boot\n");
    outb(TEMPLATE_PORT, 1);
    while (inb(TEMPLATE_PORT) != 1) {
    }
    uint32_t length = 0;
    for (int i = 0; i < 4; i++) {
        length |= (uint32_t)inb(CONFIG_PORT) << (8 * i);
    }
    uint32_t differs = mmio_read32(CONFIG_WINDOW) == length ? 0 : 1;
    serial_puts("config ");
    char one[2] = {0, 0};
    for (uint32_t i = 0; i < length && i < MAX_CONFIG; i++) {
        one[0] = (char)inb(CONFIG_PORT);
        serial_puts(one);
        if (!differs && window_byte(4 + i) != (uint8_t)one[0]) {
            differs = 4 + i;
        }
    }
    if (differs) {
        serial_puts("\nwindow differs at ");
        serial_hex(differs);
    } else {
        serial_puts("\nwindow same");
    }
    serial_puts(length > MAX_CONFIG ? "\ntoo long\n" : "\nend\n");
    return 0x05;
}
