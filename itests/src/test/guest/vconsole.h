/*
 * A minimal virtio-console driver for fast guest programs: the console at virtio-mmio slot 0, port 0
 * only (no VIRTIO_CONSOLE_F_MULTIPORT), so it needs krun's console in terminal mode for input. Waits
 * sleep in `sti; hlt` until the device's interrupt (IOAPIC pin VIRTIO_IRQ) arrives.
 */
#ifndef KRUN_VCONSOLE_H
#define KRUN_VCONSOLE_H

#include <stdint.h>

/* Sets up the IDT, the APIC and the device; returns 0 when the console is ready. */
int vconsole_init(void);
/* Writes len bytes; returns 0 once the device has used them. */
int vconsole_write(const char *s, uint32_t len);
int vconsole_puts(const char *s);
/* Reads up to and including a newline (or until max - 1 bytes) into buf, NUL-terminated; returns the length. */
int vconsole_read_line(char *buf, uint32_t max);

#endif
