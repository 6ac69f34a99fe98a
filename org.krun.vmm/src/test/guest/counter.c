/*
 * counter.elf: counts in memory, paced by the local APIC timer, for the snapshot tests. A periodic timer
 * (10 ms) counts ticks; the main loop counts iterations and every TICKS_PER_LINE ticks prints
 * "line L count C ticks T" on the serial line. After LINES lines it exits with status 0x01. A VM restored
 * from a snapshot of it goes on from the line it had reached, its counters continuing, never restarting.
 */
#include "guest.h"

#define TIMER_VECTOR 0x40
#define LAPIC_TIMER_DIVIDE_BY_16 0x3
#define LAPIC_TIMER_PERIODIC (1U << 17)
/* KVM's local APIC timer counts at 1 GHz: 62.5 M ticks a second after dividing by 16; 10 ms a period. */
#define TIMER_PERIOD 625000U
#define TICKS_PER_LINE 5
#define LINES 60

static volatile uint64_t ticks;
static volatile uint64_t count;

__attribute__((interrupt)) static void timer_interrupt(struct interrupt_frame *frame)
{
    (void)frame;
    ticks++;
    lapic_eoi();
}

int main(void)
{
    map_mmio_window();
    idt_init();
    idt_set(TIMER_VECTOR, timer_interrupt);
    apic_init();
    lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_TIMER_DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, TIMER_VECTOR | LAPIC_TIMER_PERIODIC);
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, TIMER_PERIOD);
    __asm__ volatile("sti" : : : "memory");

    uint64_t line = 0;
    uint64_t next = TICKS_PER_LINE;
    while (line < LINES) {
        count++;
        if (ticks >= next) {
            line++;
            next = ticks + TICKS_PER_LINE;
            serial_puts("line ");
            serial_hex(line);
            serial_puts(" count ");
            serial_hex(count);
            serial_puts(" ticks ");
            serial_hex(ticks);
            serial_puts("\n");
        }
    }
    cli();
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, 0);
    return 0x01;
}
