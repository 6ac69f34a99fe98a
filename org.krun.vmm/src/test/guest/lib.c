/* The fast guest programs' shared runtime; see guest.h. */
#include "guest.h"

/* The boot page tables krun writes (org.krun.vmm.internal.boot.PageTables): PDPT at 0xa000. */
#define BOOT_PDPT 0xa000UL
#define PTE_PRESENT 0x1UL
#define PTE_WRITABLE 0x2UL
#define PTE_PWT 0x8UL
#define PTE_PCD 0x10UL
#define PTE_LARGE 0x80UL

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

#define CODE_SELECTOR 0x08
#define INTERRUPT_GATE 0x8e /* present, DPL 0, 64-bit interrupt gate */

static struct idt_gate idt[256] __attribute__((aligned(16)));
static uint64_t mmio_page_directory[512] __attribute__((aligned(4096)));

extern char trap_stubs[];

void serial_puts(const char *s)
{
    while (*s) {
        outb(COM1, (uint8_t)*s++);
    }
}

void serial_hex(uint64_t value)
{
    static const char digits[] = "0123456789abcdef";
    serial_puts("0x");
    for (int shift = 60; shift >= 0; shift -= 4) {
        outb(COM1, (uint8_t)digits[(value >> shift) & 0xf]);
    }
}

void guest_exit(int status)
{
    outb(EXIT_STATUS_PORT, (uint8_t)status);
    outb(I8042_COMMAND_PORT, I8042_PULSE_RESET);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

/* Called from trap_common with the vector and the CPU's frame (error code first for some exceptions). */
__attribute__((noreturn)) void guest_trap(uint64_t vector, uint64_t *frame)
{
    int has_error_code = vector == 8 || (vector >= 10 && vector <= 14) || vector == 17 || vector == 21
            || vector == 29 || vector == 30;
    uint64_t rip = has_error_code ? frame[1] : frame[0];
    serial_puts("guest trap: vector ");
    serial_hex(vector);
    serial_puts(" rip ");
    serial_hex(rip);
    if (has_error_code) {
        serial_puts(" error ");
        serial_hex(frame[0]);
    }
    if (vector == 14) {
        uint64_t cr2;
        __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
        serial_puts(" cr2 ");
        serial_hex(cr2);
    }
    serial_puts("\n");
    guest_exit(vector < 32 ? STATUS_EXCEPTION | (int)vector : STATUS_UNEXPECTED_INTERRUPT);
}

void map_mmio_window(void)
{
    for (uint64_t i = 0; i < 512; i++) {
        mmio_page_directory[i] = (0xc0000000UL + (i << 21)) | PTE_PRESENT | PTE_WRITABLE | PTE_PWT | PTE_PCD
                | PTE_LARGE;
    }
    volatile uint64_t *pdpt = (volatile uint64_t *)BOOT_PDPT;
    pdpt[3] = (uint64_t)mmio_page_directory | PTE_PRESENT | PTE_WRITABLE;
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");
}

void idt_set(int vector, void *handler)
{
    uint64_t address = (uint64_t)handler;
    struct idt_gate *g = &idt[vector];
    g->offset_low = (uint16_t)address;
    g->selector = CODE_SELECTOR;
    g->ist = 0;
    g->type = INTERRUPT_GATE;
    g->offset_mid = (uint16_t)(address >> 16);
    g->offset_high = (uint32_t)(address >> 32);
    g->reserved = 0;
}

void idt_init(void)
{
    for (int v = 0; v < 256; v++) {
        idt_set(v, trap_stubs + 16 * v);
    }
    struct {
        uint16_t limit;
        uint64_t base;
    } __attribute__((packed)) idtr = {sizeof(idt) - 1, (uint64_t)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void lapic_write(uint32_t reg, uint32_t value)
{
    mmio_write32(LAPIC_BASE + reg, value);
}

uint32_t lapic_read(uint32_t reg)
{
    return mmio_read32(LAPIC_BASE + reg);
}

void lapic_eoi(void)
{
    lapic_write(LAPIC_EOI, 0);
}

void apic_init(void)
{
    /* An uninitialised 8259 has every line unmasked; krun wires it to LINT0 as ExtINT. Mask it all. */
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    lapic_write(LAPIC_SVR, LAPIC_SVR_ENABLE | 0xff);
}

void ioapic_route(int pin, uint8_t vector)
{
    volatile uint32_t *regsel = (volatile uint32_t *)(IOAPIC_BASE + IOAPIC_REGSEL);
    volatile uint32_t *window = (volatile uint32_t *)(IOAPIC_BASE + IOAPIC_WINDOW);
    *regsel = IOAPIC_REDIRECTION_TABLE + 2 * pin + 1;
    *window = 0; /* destination: APIC id 0 */
    *regsel = IOAPIC_REDIRECTION_TABLE + 2 * pin;
    *window = vector; /* fixed, physical, active high, edge, unmasked */
}
