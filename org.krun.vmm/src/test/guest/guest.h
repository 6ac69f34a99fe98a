/*
 * What the fast guest programs share: port and MMIO access, the serial debug line, the exit path, the
 * IDT, the local APIC and IOAPIC, and a mapping for the MMIO window above 3 GiB.
 *
 * These run at CPL0 on kvm-pvm, whose instruction emulator executes every instruction (about 1 us each)
 * and stops the guest on instructions it lacks (SSE, popcnt, int3, ...): keep the code small and plain.
 */
#ifndef KRUN_GUEST_H
#define KRUN_GUEST_H

#include <stdint.h>

/* krun's legacy devices (org.krun.vmm.internal.legacy). */
#define EXIT_STATUS_PORT 0xf4
#define I8042_COMMAND_PORT 0x64
#define I8042_PULSE_RESET 0xfe
#define CMOS_INDEX_PORT 0x70
#define CMOS_DATA_PORT 0x71
#define COM1 0x3f8
#define PIC1_DATA 0x21
#define PIC2_DATA 0xa1

/* The interrupt controllers, as krun's MP table describes them. */
#define IOAPIC_BASE 0xfec00000UL
#define LAPIC_BASE 0xfee00000UL
#define LAPIC_EOI 0x0b0
#define LAPIC_SVR 0x0f0
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INITIAL_COUNT 0x380
#define LAPIC_TIMER_DIVIDE 0x3e0
#define IOAPIC_REGSEL 0x00
#define IOAPIC_WINDOW 0x10
#define IOAPIC_REDIRECTION_TABLE 0x10

/* virtio-mmio device 0 (the console) and its interrupt line. */
#define VIRTIO_MMIO_BASE 0xd0000000UL
#define VIRTIO_MMIO_SIZE 0x1000UL
#define VIRTIO_IRQ 5

/* Status values reported by the trap path (programs use values below 0x80 for their own results). */
#define STATUS_EXCEPTION 0x80 /* | vector, for vectors 0-31 */
#define STATUS_UNEXPECTED_INTERRUPT 0xa0

static inline void outb(uint16_t port, uint8_t value)
{
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port)
{
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
    return value;
}

static inline uint32_t mmio_read32(uint64_t address)
{
    return *(volatile uint32_t *)address;
}

static inline uint16_t mmio_read16(uint64_t address)
{
    return *(volatile uint16_t *)address;
}

static inline void mmio_write32(uint64_t address, uint32_t value)
{
    *(volatile uint32_t *)address = value;
}

static inline void barrier(void)
{
    __asm__ volatile("" : : : "memory");
}

static inline void cli(void)
{
    __asm__ volatile("cli" : : : "memory");
}

/* sti takes effect after the next instruction: an interrupt that is already pending wakes the hlt. */
static inline void sti_hlt(void)
{
    __asm__ volatile("sti; hlt" : : : "memory");
}

/* Debug output on COM1; it reaches the host only with VmConfig.kernelLog(true). */
void serial_puts(const char *s);
void serial_hex(uint64_t value);

/* Reports status on the exit-status port and resets the VM through the i8042. */
__attribute__((noreturn)) void guest_exit(int status);

/* Maps 3-4 GiB (virtio-mmio window, IOAPIC, local APIC) uncached with 2 MiB pages. */
void map_mmio_window(void);

/* Installs an IDT whose every vector ends the VM with a status naming it; handlers override vectors. */
void idt_init(void);
void idt_set(int vector, void *handler);

/* Enables the local APIC (spurious vector 0xff) and masks the legacy PIC, which krun also wires to LINT0. */
void apic_init(void);
void lapic_write(uint32_t reg, uint32_t value);
uint32_t lapic_read(uint32_t reg);
void lapic_eoi(void);
/* Routes IOAPIC pin to vector on APIC id 0: fixed delivery, physical destination, edge, active high. */
void ioapic_route(int pin, uint8_t vector);

struct interrupt_frame;

#endif
