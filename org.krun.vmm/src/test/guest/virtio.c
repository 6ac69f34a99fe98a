/*
 * virtio.elf: a minimal virtio-console driver (virtio 1.2 §5.3, without VIRTIO_CONSOLE_F_MULTIPORT, so
 * port 0 only: queue 0 receiveq, queue 1 transmitq) that waits for used buffers with `sti; hlt`, woken
 * by the device's interrupt: irqfd -> IOAPIC pin 5 -> local APIC -> IDT vector VIRTIO_VECTOR.
 *
 * It prints "hello from the guest\n", then echoes what the host sends until a newline, and reports one
 * bit per step that worked (all: 0x7f). A local APIC timer is the watchdog of every wait, so a missing
 * interrupt shows up as a missing bit instead of a hang.
 */
#include "guest.h"
#include "virtio_mmio.h"

#define QUEUE_SIZE 8
#define RECEIVEQ 0
#define TRANSMITQ 1
#define VIRTQ_DESC_F_WRITE 2

#define VIRTIO_VECTOR 0x30
#define WATCHDOG_VECTOR 0x31
#define LAPIC_TIMER_DIVIDE_BY_16 0x3
/* KVM's local APIC timer counts at 1 GHz: 62.5 M ticks a second after dividing by 16. */
#define WATCHDOG_TICKS_PER_SECOND 62500000U
#define WATCHDOG_SECONDS 10

#define STEP_DEVICE_FOUND 0x01
#define STEP_FEATURES_NEGOTIATED 0x02 /* FEATURES_OK refused without VERSION_1, kept with it */
#define STEP_DRIVER_OK 0x04
#define STEP_TRANSMIT_USED 0x08
#define STEP_TRANSMIT_INTERRUPT 0x10
#define STEP_ECHOED 0x20
#define STEP_RECEIVE_INTERRUPT 0x40

/* virtio 1.2 §2.7.5, §2.7.6, §2.7.8: split virtqueue areas. */
struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[QUEUE_SIZE];
    uint16_t used_event;
};

struct virtq_used_elem {
    uint32_t id;
    uint32_t len;
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct virtq_used_elem ring[QUEUE_SIZE];
    uint16_t avail_event;
};

struct virtq {
    struct virtq_desc desc[QUEUE_SIZE] __attribute__((aligned(16)));
    struct virtq_avail avail __attribute__((aligned(2)));
    struct virtq_used used __attribute__((aligned(4)));
    uint16_t last_used; /* driver side: used entries consumed so far */
};

static struct virtq queues[2] __attribute__((aligned(4096)));
static char receive_buffer[64];
static char echo_buffer[64];
static const char hello[] = "hello from the guest\n";

static volatile uint32_t virtio_interrupts;
static volatile uint32_t used_buffer_interrupts;
static volatile uint32_t watchdog_fired;

static uint32_t reg(uint32_t offset)
{
    return mmio_read32(VIRTIO_MMIO_BASE + offset);
}

static void set_reg(uint32_t offset, uint32_t value)
{
    mmio_write32(VIRTIO_MMIO_BASE + offset, value);
}

__attribute__((interrupt)) static void virtio_interrupt(struct interrupt_frame *frame)
{
    (void)frame;
    uint32_t pending = reg(VIRTIO_MMIO_INTERRUPT_STATUS);
    set_reg(VIRTIO_MMIO_INTERRUPT_ACK, pending);
    virtio_interrupts++;
    if (pending & VIRTIO_INTERRUPT_USED_BUFFER) {
        used_buffer_interrupts++;
    }
    lapic_eoi();
}

__attribute__((interrupt)) static void watchdog_interrupt(struct interrupt_frame *frame)
{
    (void)frame;
    watchdog_fired = 1;
    lapic_eoi();
}

static void watchdog_arm(void)
{
    watchdog_fired = 0;
    lapic_write(LAPIC_TIMER_DIVIDE, LAPIC_TIMER_DIVIDE_BY_16);
    lapic_write(LAPIC_LVT_TIMER, WATCHDOG_VECTOR); /* one-shot, unmasked */
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, WATCHDOG_SECONDS * WATCHDOG_TICKS_PER_SECOND);
}

static void watchdog_disarm(void)
{
    lapic_write(LAPIC_TIMER_INITIAL_COUNT, 0);
}

static int used_pending(struct virtq *q)
{
    return *(volatile uint16_t *)&q->used.idx != q->last_used;
}

#define GOT_USED 1
#define GOT_INTERRUPT 2

/*
 * Sleeps until q has a used buffer and a used-buffer interrupt has arrived since `interrupts` was read;
 * interrupts are off again on return. Returns GOT_USED | GOT_INTERRUPT, less what the watchdog missed.
 */
static int wait_for_used(struct virtq *q, uint32_t interrupts)
{
    watchdog_arm();
    for (;;) {
        cli();
        int got = (used_pending(q) ? GOT_USED : 0) | (used_buffer_interrupts != interrupts ? GOT_INTERRUPT : 0);
        if (got == (GOT_USED | GOT_INTERRUPT)) {
            watchdog_disarm();
            return got;
        }
        if (watchdog_fired) {
            serial_puts("virtio.elf: watchdog expired; used ");
            serial_hex(got & GOT_USED);
            serial_puts(", interrupts ");
            serial_hex(virtio_interrupts);
            serial_puts("\n");
            return got;
        }
        sti_hlt();
    }
}

/* Takes the next used element of q. */
static struct virtq_used_elem take_used(struct virtq *q)
{
    struct virtq_used_elem e = q->used.ring[q->last_used % QUEUE_SIZE];
    q->last_used++;
    return e;
}

/* Makes one buffer available on queue index and notifies the device. */
static void add_buffer(int index, const void *buffer, uint32_t len, uint16_t flags)
{
    struct virtq *q = &queues[index];
    uint16_t avail = q->avail.idx;
    uint16_t head = avail % QUEUE_SIZE;
    q->desc[head].addr = (uint64_t)buffer;
    q->desc[head].len = len;
    q->desc[head].flags = flags;
    q->desc[head].next = 0;
    q->avail.ring[head] = head;
    barrier(); /* the ring entry before the index that publishes it (x86 keeps stores in order) */
    *(volatile uint16_t *)&q->avail.idx = (uint16_t)(avail + 1);
    barrier();
    set_reg(VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)index);
}

static void set_queue(int index)
{
    struct virtq *q = &queues[index];
    set_reg(VIRTIO_MMIO_QUEUE_SEL, (uint32_t)index);
    set_reg(VIRTIO_MMIO_QUEUE_NUM, QUEUE_SIZE);
    set_reg(VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)(uint64_t)q->desc);
    set_reg(VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)((uint64_t)q->desc >> 32));
    set_reg(VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)(uint64_t)&q->avail);
    set_reg(VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)((uint64_t)&q->avail >> 32));
    set_reg(VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)(uint64_t)&q->used);
    set_reg(VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)((uint64_t)&q->used >> 32));
    set_reg(VIRTIO_MMIO_QUEUE_READY, 1);
}

/* virtio 1.2 §3.1.1 driver initialisation; returns the steps that worked. */
static int initialise_device(void)
{
    if (reg(VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC || reg(VIRTIO_MMIO_VERSION) != 2
            || reg(VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_CONSOLE) {
        return 0;
    }
    int steps = STEP_DEVICE_FOUND;
    uint32_t driver = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

    /* Without VERSION_1 the device must refuse FEATURES_OK (§6.1); then reset and do it right. */
    set_reg(VIRTIO_MMIO_STATUS, 0);
    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    set_reg(VIRTIO_MMIO_STATUS, driver);
    set_reg(VIRTIO_MMIO_STATUS, driver | VIRTIO_STATUS_FEATURES_OK);
    int refused = (reg(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) == 0;
    set_reg(VIRTIO_MMIO_STATUS, 0);

    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    set_reg(VIRTIO_MMIO_STATUS, driver);
    set_reg(VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    uint32_t offered_high = reg(VIRTIO_MMIO_DEVICE_FEATURES);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 0); /* no MULTIPORT, no SIZE, no EVENT_IDX */
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HIGH);
    set_reg(VIRTIO_MMIO_STATUS, driver | VIRTIO_STATUS_FEATURES_OK);
    if ((reg(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) == 0) {
        return steps;
    }
    if (refused && (offered_high & VIRTIO_F_VERSION_1_HIGH) != 0) {
        steps |= STEP_FEATURES_NEGOTIATED;
    }
    for (int q = 0; q < 2; q++) {
        set_reg(VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
        if (reg(VIRTIO_MMIO_QUEUE_NUM_MAX) < QUEUE_SIZE) {
            return steps;
        }
        set_queue(q);
    }
    set_reg(VIRTIO_MMIO_STATUS, driver | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    uint32_t status = reg(VIRTIO_MMIO_STATUS);
    if ((status & VIRTIO_STATUS_DRIVER_OK) != 0 && (status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) == 0) {
        steps |= STEP_DRIVER_OK;
    }
    return steps;
}

/*
 * Echoes what arrives on the receive queue until a newline. Returns STEP_ECHOED when it all went out, and
 * STEP_RECEIVE_INTERRUPT when every receive woke the driver through its interrupt.
 */
static int echo_line(void)
{
    int steps = STEP_RECEIVE_INTERRUPT;
    for (int chunks = 0; chunks < 16; chunks++) {
        uint32_t interrupts = used_buffer_interrupts;
        add_buffer(RECEIVEQ, receive_buffer, sizeof(receive_buffer), VIRTQ_DESC_F_WRITE);
        int got = wait_for_used(&queues[RECEIVEQ], interrupts);
        if ((got & GOT_INTERRUPT) == 0) {
            steps &= ~STEP_RECEIVE_INTERRUPT;
        }
        if ((got & GOT_USED) == 0) {
            return steps & ~STEP_RECEIVE_INTERRUPT;
        }
        struct virtq_used_elem received = take_used(&queues[RECEIVEQ]);
        uint32_t len = received.len < sizeof(receive_buffer) ? received.len : sizeof(receive_buffer);
        int newline = 0;
        for (uint32_t i = 0; i < len; i++) {
            echo_buffer[i] = receive_buffer[i];
            newline |= receive_buffer[i] == '\n';
        }
        interrupts = used_buffer_interrupts;
        add_buffer(TRANSMITQ, echo_buffer, len, 0);
        if ((wait_for_used(&queues[TRANSMITQ], interrupts) & GOT_USED) == 0) {
            return steps;
        }
        take_used(&queues[TRANSMITQ]);
        if (newline) {
            return steps | STEP_ECHOED;
        }
    }
    return steps;
}

int main(void)
{
    map_mmio_window();
    idt_init();
    idt_set(VIRTIO_VECTOR, virtio_interrupt);
    idt_set(WATCHDOG_VECTOR, watchdog_interrupt);
    apic_init();
    ioapic_route(VIRTIO_IRQ, VIRTIO_VECTOR);

    int steps = initialise_device();
    if ((steps & STEP_DRIVER_OK) == 0) {
        return steps;
    }

    uint32_t interrupts = used_buffer_interrupts;
    add_buffer(TRANSMITQ, hello, sizeof(hello) - 1, 0);
    int got = wait_for_used(&queues[TRANSMITQ], interrupts);
    if ((got & GOT_USED) == 0) {
        return steps;
    }
    take_used(&queues[TRANSMITQ]);
    steps |= STEP_TRANSMIT_USED;
    if ((got & GOT_INTERRUPT) != 0) {
        steps |= STEP_TRANSMIT_INTERRUPT;
    }
    return steps | echo_line();
}
