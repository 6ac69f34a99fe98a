/* See vconsole.h. Split virtqueues as in virtio 1.2 §2.7; driver initialisation as in §3.1.1. */
#include "guest.h"
#include "vconsole.h"
#include "virtio_mmio.h"

#define QUEUE_SIZE 8
#define RECEIVEQ 0
#define TRANSMITQ 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTIO_VECTOR 0x30

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
    uint16_t last_used;
};

static struct virtq queues[2] __attribute__((aligned(4096)));
static char transmit_buffer[128];
static char receive_buffer[64];

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
    set_reg(VIRTIO_MMIO_INTERRUPT_ACK, reg(VIRTIO_MMIO_INTERRUPT_STATUS));
    lapic_eoi();
}

static int used_pending(struct virtq *q)
{
    return *(volatile uint16_t *)&q->used.idx != q->last_used;
}

/* Sleeps until q has a used buffer; every wake-up is the device's interrupt (or a kill from the host). */
static struct virtq_used_elem wait_for_used(struct virtq *q)
{
    for (;;) {
        cli();
        if (used_pending(q)) {
            break;
        }
        sti_hlt();
    }
    struct virtq_used_elem e = q->used.ring[q->last_used % QUEUE_SIZE];
    q->last_used++;
    return e;
}

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
    barrier();
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

int vconsole_init(void)
{
    map_mmio_window();
    idt_init();
    idt_set(VIRTIO_VECTOR, virtio_interrupt);
    apic_init();
    ioapic_route(VIRTIO_IRQ, VIRTIO_VECTOR);
    if (reg(VIRTIO_MMIO_MAGIC_VALUE) != VIRTIO_MMIO_MAGIC || reg(VIRTIO_MMIO_VERSION) != 2
            || reg(VIRTIO_MMIO_DEVICE_ID) != VIRTIO_ID_CONSOLE) {
        return -1;
    }
    uint32_t driver = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;
    set_reg(VIRTIO_MMIO_STATUS, 0);
    set_reg(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    set_reg(VIRTIO_MMIO_STATUS, driver);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, 0);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    set_reg(VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HIGH);
    set_reg(VIRTIO_MMIO_STATUS, driver | VIRTIO_STATUS_FEATURES_OK);
    if ((reg(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK) == 0) {
        return -1;
    }
    for (int q = 0; q < 2; q++) {
        set_reg(VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
        if (reg(VIRTIO_MMIO_QUEUE_NUM_MAX) < QUEUE_SIZE) {
            return -1;
        }
        set_queue(q);
    }
    set_reg(VIRTIO_MMIO_STATUS, driver | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    return (reg(VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) == 0 ? 0 : -1;
}

int vconsole_write(const char *s, uint32_t len)
{
    while (len > 0) {
        uint32_t chunk = len < sizeof(transmit_buffer) ? len : sizeof(transmit_buffer);
        for (uint32_t i = 0; i < chunk; i++) {
            transmit_buffer[i] = s[i];
        }
        add_buffer(TRANSMITQ, transmit_buffer, chunk, 0);
        wait_for_used(&queues[TRANSMITQ]);
        s += chunk;
        len -= chunk;
    }
    return 0;
}

int vconsole_puts(const char *s)
{
    uint32_t len = 0;
    while (s[len]) {
        len++;
    }
    return vconsole_write(s, len);
}

int vconsole_read_line(char *buf, uint32_t max)
{
    uint32_t n = 0;
    while (n + 1 < max) {
        add_buffer(RECEIVEQ, receive_buffer, sizeof(receive_buffer), VIRTQ_DESC_F_WRITE);
        struct virtq_used_elem e = wait_for_used(&queues[RECEIVEQ]);
        uint32_t len = e.len < sizeof(receive_buffer) ? e.len : sizeof(receive_buffer);
        int newline = 0;
        for (uint32_t i = 0; i < len && n + 1 < max; i++) {
            buf[n++] = receive_buffer[i];
            newline |= receive_buffer[i] == '\n';
        }
        if (newline) {
            break;
        }
    }
    buf[n] = 0;
    return (int)n;
}
