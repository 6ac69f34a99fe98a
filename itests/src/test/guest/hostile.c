/*
 * hostile.elf: a guest that attacks every virtio-mmio device krun gave it, round after round, as a
 * malicious guest kernel could (virtio 1.2 §2.7, §4.2 describe what a well-behaved driver does; this one
 * does everything else). Each round picks, per device, one of:
 *   - descriptor loops (next chains and indirect tables that point back at themselves),
 *   - buffers and rings outside guest RAM (above 4 GiB, at the top of the address space, on MMIO),
 *   - zero-length and gigantic (4 GiB) buffers, chains longer than the queue,
 *   - nested and malformed indirect tables (length 0, not a multiple of 16, 4 GiB),
 *   - avail indexes far ahead of the ring and heads out of range,
 *   - queues reconfigured while the device runs, status bits out of order,
 *   - reset storms, notification floods (valid and invalid queue numbers),
 *   - garbage in the configuration space and in unknown registers,
 *   - well-shaped chains full of random bytes (requests the device parses and refuses).
 * It never lets a device write into its own code or stack: writable buffers are in `scratch` or outside
 * RAM. It prints "round N\n" on the serial line after every round and runs until the host kills it,
 * or for hostile.rounds=N rounds (then exits 0). hostile.seed=N picks the random sequence.
 */
#include "guest.h"
#include "virtio_mmio.h"

#define ZERO_PAGE 0x7000UL
#define ZERO_PAGE_CMD_LINE_PTR 0x228
#define SLOTS 24
#define MAX_QUEUES 8
#define QN 64 /* the queue size a round uses when it plays by the rules */
#define PAGE 4096

#define VIRTIO_MMIO_QUEUE_NUM_MAX_OFF VIRTIO_MMIO_QUEUE_NUM_MAX
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define DESC_OFFSET 0
#define AVAIL_OFFSET 1024
#define USED_OFFSET 2048

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

/* One page per (slot, queue): descriptor table, avail ring and used ring at fixed offsets. */
static uint8_t queue_pages[SLOTS][MAX_QUEUES][PAGE] __attribute__((aligned(PAGE)));
/* Buffers the devices read and write. */
static uint8_t scratch[256 * 1024] __attribute__((aligned(PAGE)));

static uint64_t rng_state = 0x9e3779b97f4a7c15UL;

static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    rng_state = x;
    return x;
}

static uint32_t below(uint32_t n)
{
    return (uint32_t)(rnd() % n);
}

static inline void mmio_write8(uint64_t address, uint8_t value)
{
    *(volatile uint8_t *)address = value;
}

static uint32_t reg(uint64_t base, uint32_t offset)
{
    return mmio_read32(base + offset);
}

static void wr(uint64_t base, uint32_t offset, uint32_t value)
{
    mmio_write32(base + offset, value);
}

static void wr64(uint64_t base, uint32_t low, uint64_t value)
{
    wr(base, low, (uint32_t)value);
    wr(base, low + 4, (uint32_t)(value >> 32));
}

/* An address a device must refuse: above RAM, at the top, on MMIO or the local APIC, or straddling 4 GiB. */
static uint64_t outside_ram(void)
{
    switch (below(6)) {
    case 0:
        return 0x100000000UL + (rnd() & 0xffffff000UL);
    case 1:
        return 0xfffffffffffff000UL;
    case 2:
        return 0xfffffffffffffff0UL + below(16);
    case 3:
        return VIRTIO_MMIO_BASE + below(SLOTS) * VIRTIO_MMIO_SIZE;
    case 4:
        return LAPIC_BASE;
    default:
        return 0xffffffffUL - below(64);
    }
}

/* A buffer address in scratch (length fits). */
static uint64_t in_scratch(uint32_t len)
{
    if (len > sizeof(scratch)) {
        len = sizeof(scratch);
    }
    return (uint64_t)scratch + below((uint32_t)sizeof(scratch) - len + 1);
}

/* Interpreted at about a million instructions a second on kvm-pvm: eight bytes a store. */
static void fill_random(uint8_t *p, uint32_t len)
{
    uint32_t i = 0;
    for (; i + 8 <= len && ((uint64_t)(p + i) & 7) == 0; i += 8) {
        *(uint64_t *)(p + i) = rnd();
    }
    for (; i < len; i++) {
        p[i] = (uint8_t)rnd();
    }
}

static void zero_page(uint8_t *page)
{
    for (uint32_t i = 0; i < PAGE; i += 8) {
        *(uint64_t *)(page + i) = 0;
    }
}

static struct desc *descs(int slot, int q)
{
    return (struct desc *)(queue_pages[slot][q] + DESC_OFFSET);
}

static volatile uint16_t *avail(int slot, int q)
{
    return (volatile uint16_t *)(queue_pages[slot][q] + AVAIL_OFFSET);
}

/* Reset, then ACKNOWLEDGE, DRIVER, every offered feature (sometimes with bits flipped), FEATURES_OK. */
static void negotiate(uint64_t base)
{
    wr(base, VIRTIO_MMIO_STATUS, 0);
    wr(base, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    wr(base, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    for (uint32_t sel = 0; sel < 2; sel++) {
        wr(base, VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
        uint32_t offered = reg(base, VIRTIO_MMIO_DEVICE_FEATURES);
        if (below(8) == 0) {
            offered ^= (uint32_t)rnd();
        }
        wr(base, VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
        wr(base, VIRTIO_MMIO_DRIVER_FEATURES, offered);
    }
    wr(base, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
}

static int queue_count(uint64_t base)
{
    int n = 0;
    for (int q = 0; q < MAX_QUEUES; q++) {
        wr(base, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
        if (reg(base, VIRTIO_MMIO_QUEUE_NUM_MAX_OFF) != 0) {
            n = q + 1;
        }
    }
    return n;
}

/* Sets queue q up in its page (cleared), size num; ring addresses as given (0: the page's own). */
static void setup_queue(uint64_t base, int slot, int q, uint32_t num, uint64_t desc, uint64_t drv, uint64_t dev)
{
    zero_page(queue_pages[slot][q]);
    uint64_t page = (uint64_t)queue_pages[slot][q];
    wr(base, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
    wr(base, VIRTIO_MMIO_QUEUE_NUM, num);
    wr64(base, VIRTIO_MMIO_QUEUE_DESC_LOW, desc ? desc : page + DESC_OFFSET);
    wr64(base, VIRTIO_MMIO_QUEUE_DRIVER_LOW, drv ? drv : page + AVAIL_OFFSET);
    wr64(base, VIRTIO_MMIO_QUEUE_DEVICE_LOW, dev ? dev : page + USED_OFFSET);
    wr(base, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* Makes heads [first, first + n) available on queue q and notifies. */
static void publish(uint64_t base, int slot, int q, uint16_t first, uint16_t n, uint16_t skip)
{
    volatile uint16_t *a = avail(slot, q);
    uint16_t idx = a[1];
    for (uint16_t i = 0; i < n; i++) {
        a[2 + (uint16_t)(idx + i) % QN] = (uint16_t)(first + i);
    }
    barrier();
    a[1] = (uint16_t)(idx + n + skip);
    barrier();
    wr(base, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
}

/* A well-shaped request: a readable buffer of random bytes, then a writable one. */
static void garbage_request(struct desc *d, uint16_t at, uint16_t next_free)
{
    uint32_t len = 1 + below(below(16) == 0 ? 8192 : 160);
    uint64_t in = in_scratch(len);
    fill_random((uint8_t *)in, len);
    d[at] = (struct desc){in, len, VIRTQ_DESC_F_NEXT, next_free};
    uint32_t out = 16 + below(4096);
    d[next_free] = (struct desc){in_scratch(out), out, VIRTQ_DESC_F_WRITE, 0};
}

enum attack {
    ATTACK_GARBAGE,
    ATTACK_LOOPS,
    ATTACK_OUTSIDE_RAM,
    ATTACK_SIZES,
    ATTACK_INDIRECT,
    ATTACK_RINGS_OUTSIDE,
    ATTACK_AVAIL_AHEAD,
    ATTACK_RECONFIGURE,
    ATTACK_RESET_STORM,
    ATTACK_NOTIFY_FLOOD,
    ATTACK_CONFIG,
    ATTACKS
};

static void attack(int slot, enum attack kind)
{
    uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)slot * VIRTIO_MMIO_SIZE;
    int queues = queue_count(base);
    if (queues == 0) {
        return;
    }
    negotiate(base);
    for (int q = 0; q < queues; q++) {
        if (kind == ATTACK_RINGS_OUTSIDE) {
            uint64_t page = (uint64_t)queue_pages[slot][q];
            switch (below(4)) {
            case 0:
                setup_queue(base, slot, q, QN, outside_ram(), 0, 0);
                break;
            case 1:
                setup_queue(base, slot, q, QN, 0, 0, outside_ram());
                break;
            case 2: /* every ring on the same memory */
                setup_queue(base, slot, q, QN, page, page, page);
                break;
            default: /* a size the device does not offer, or not a power of two, or 0 */
                setup_queue(base, slot, q, below(3) == 0 ? 0 : below(2) ? 0xffff : 3 + 2 * below(100), 0, 0, 0);
                break;
            }
        } else {
            setup_queue(base, slot, q, QN, 0, 0, 0);
        }
    }
    wr(base, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK
            | VIRTIO_STATUS_DRIVER_OK);

    for (int q = 0; q < queues; q++) {
        struct desc *d = descs(slot, q);
        switch (kind) {
        case ATTACK_GARBAGE:
        case ATTACK_RINGS_OUTSIDE:
            for (uint16_t i = 0; i < QN / 2; i++) {
                garbage_request(d, i, (uint16_t)(QN / 2 + i));
            }
            publish(base, slot, q, 0, QN / 2, 0);
            break;
        case ATTACK_LOOPS:
            /* 0 -> 1 -> 0, a self loop at 2, and a loop through the whole table from 3 */
            d[0] = (struct desc){in_scratch(64), 64, VIRTQ_DESC_F_NEXT, 1};
            d[1] = (struct desc){in_scratch(64), 64, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 0};
            d[2] = (struct desc){in_scratch(64), 64, VIRTQ_DESC_F_NEXT, 2};
            for (uint16_t i = 3; i < QN; i++) {
                d[i] = (struct desc){in_scratch(16), 16, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1 < QN ? i + 1 : 3)};
            }
            publish(base, slot, q, 0, 4, 0);
            break;
        case ATTACK_OUTSIDE_RAM:
            for (uint16_t i = 0; i < QN; i++) {
                d[i] = (struct desc){outside_ram(), 1 + below(8192), (uint16_t)(below(2) ? VIRTQ_DESC_F_WRITE : 0),
                        0};
            }
            publish(base, slot, q, 0, QN, 0);
            break;
        case ATTACK_SIZES:
            d[0] = (struct desc){in_scratch(0), 0, 0, 0};
            d[1] = (struct desc){in_scratch(0), 0, VIRTQ_DESC_F_WRITE, 0};
            d[2] = (struct desc){(uint64_t)scratch, 0xffffffffU, 0, 0};
            d[3] = (struct desc){(uint64_t)scratch, 0xffffffffU, VIRTQ_DESC_F_WRITE, 0};
            /* a chain as long as the table, then one that runs off its end */
            for (uint16_t i = 4; i < QN; i++) {
                d[i] = (struct desc){in_scratch(512), 512, VIRTQ_DESC_F_NEXT, (uint16_t)(i + 1)};
            }
            d[QN - 1].next = 0xffff;
            publish(base, slot, q, 0, 5, 0);
            break;
        case ATTACK_INDIRECT: {
            struct desc *table = (struct desc *)scratch;
            table[0] = (struct desc){(uint64_t)table, 16 * 4, VIRTQ_DESC_F_INDIRECT, 0}; /* nested */
            table[1] = (struct desc){in_scratch(32), 32, VIRTQ_DESC_F_NEXT, 1};            /* self loop */
            table[2] = (struct desc){in_scratch(32), 32, VIRTQ_DESC_F_NEXT, 200};          /* past the table */
            table[3] = (struct desc){outside_ram(), 32, VIRTQ_DESC_F_WRITE, 0};
            d[0] = (struct desc){(uint64_t)table, 16 * 4, VIRTQ_DESC_F_INDIRECT, 0};
            d[1] = (struct desc){(uint64_t)&table[1], 16 * 2, VIRTQ_DESC_F_INDIRECT, 0};
            d[2] = (struct desc){(uint64_t)table, 0, VIRTQ_DESC_F_INDIRECT, 0};
            d[3] = (struct desc){(uint64_t)table, 17, VIRTQ_DESC_F_INDIRECT, 0};
            d[4] = (struct desc){(uint64_t)table, 0xfffffff0U, VIRTQ_DESC_F_INDIRECT, 0};
            d[5] = (struct desc){outside_ram(), 16 * 8, VIRTQ_DESC_F_INDIRECT, 0};
            d[6] = (struct desc){(uint64_t)table, 16 * 4, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 7};
            d[7] = (struct desc){in_scratch(64), 64, VIRTQ_DESC_F_WRITE, 0};
            publish(base, slot, q, 0, 7, 0);
            break;
        }
        case ATTACK_AVAIL_AHEAD: {
            volatile uint16_t *a = avail(slot, q);
            for (uint16_t i = 0; i < QN; i++) {
                a[2 + i] = (uint16_t)(below(2) ? 0xffff - below(16) : QN + below(1000));
            }
            for (uint16_t i = 0; i < QN / 2; i++) {
                garbage_request(d, i, (uint16_t)(QN / 2 + i));
            }
            barrier();
            a[1] = (uint16_t)(below(2) ? 0x8000 : QN + 1 + below(1000));
            barrier();
            wr(base, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
            break;
        }
        case ATTACK_RECONFIGURE:
            for (uint16_t i = 0; i < QN / 2; i++) {
                garbage_request(d, i, (uint16_t)(QN / 2 + i));
            }
            publish(base, slot, q, 0, QN / 2, 0);
            for (int i = 0; i < 20; i++) {
                wr(base, VIRTIO_MMIO_QUEUE_SEL, (uint32_t)q);
                wr(base, VIRTIO_MMIO_QUEUE_READY, 0);
                wr(base, VIRTIO_MMIO_QUEUE_NUM, below(2) ? 1u << below(10) : (uint32_t)rnd());
                wr64(base, VIRTIO_MMIO_QUEUE_DESC_LOW, below(2) ? (uint64_t)queue_pages[slot][q] : outside_ram());
                wr(base, VIRTIO_MMIO_QUEUE_READY, (uint32_t)below(3));
                wr(base, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
                wr(base, VIRTIO_MMIO_STATUS, (uint32_t)rnd() & 0xff);
                wr(base, VIRTIO_MMIO_DRIVER_FEATURES_SEL, (uint32_t)below(4));
                wr(base, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)rnd());
                wr(base, VIRTIO_MMIO_INTERRUPT_ACK, (uint32_t)rnd());
            }
            break;
        case ATTACK_RESET_STORM:
            for (int i = 0; i < 40; i++) {
                negotiate(base);
                setup_queue(base, slot, q, QN, 0, 0, 0);
                wr(base, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
                        | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
                garbage_request(d, 0, 1);
                publish(base, slot, q, 0, 1, 0);
                wr(base, VIRTIO_MMIO_STATUS, 0);
            }
            break;
        case ATTACK_NOTIFY_FLOOD:
            garbage_request(d, 0, 1);
            publish(base, slot, q, 0, 1, 0);
            for (int i = 0; i < 500; i++) {
                wr(base, VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)q);
                wr(base, VIRTIO_MMIO_QUEUE_NOTIFY, i % 2 ? 0xffffu : (uint32_t)(MAX_QUEUES + i));
            }
            break;
        case ATTACK_CONFIG:
            for (uint32_t off = 0; off < 0x100; off += 4) {
                wr(base, VIRTIO_MMIO_CONFIG + off, (uint32_t)rnd());
                mmio_write8(base + VIRTIO_MMIO_CONFIG + off + 1, (uint8_t)rnd());
                (void)reg(base, VIRTIO_MMIO_CONFIG + off);
            }
            for (int i = 0; i < 64; i++) { /* registers virtio-mmio does not define */
                uint32_t off = (0x0a8 + 4 * below(0x3c0 / 4 - 0x2a)) & 0xffc;
                if (off != VIRTIO_MMIO_STATUS) {
                    wr(base, off, (uint32_t)rnd());
                    (void)reg(base, off);
                }
            }
            break;
        default:
            break;
        }
    }
}

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

static uint64_t number(const char *s)
{
    uint64_t n = 0;
    while (*s >= '0' && *s <= '9') {
        n = n * 10 + (uint64_t)(*s++ - '0');
    }
    return n;
}

static void serial_decimal(uint64_t value)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (n > 0) {
        outb(COM1, (uint8_t)digits[--n]);
    }
}

int main(void)
{
    uint64_t rounds = 0; /* 0: until killed */
    const char *c = (const char *)(uint64_t)*(volatile uint32_t *)(ZERO_PAGE + ZERO_PAGE_CMD_LINE_PTR);
    while (*c) {
        while (*c == ' ') {
            c++;
        }
        const char *rest;
        if (starts_with(c, "hostile.rounds=", &rest)) {
            rounds = number(rest);
        } else if (starts_with(c, "hostile.seed=", &rest)) {
            rng_state ^= number(rest) * 0x2545f4914f6cdd1dUL;
        }
        while (*c && *c != ' ') {
            c++;
        }
    }
    map_mmio_window();
    idt_init();
    apic_init(); /* interrupts stay disabled: the devices' interrupts pend, unanswered */

    int slots[SLOTS];
    int found = 0;
    for (int n = 0; n < SLOTS; n++) {
        uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)n * VIRTIO_MMIO_SIZE;
        if (mmio_read32(base + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC) {
            slots[found++] = n;
        }
    }
    serial_puts("hostile: devices");
    for (int i = 0; i < found; i++) {
        serial_puts(" ");
        serial_decimal(mmio_read32(VIRTIO_MMIO_BASE + (uint64_t)slots[i] * VIRTIO_MMIO_SIZE + VIRTIO_MMIO_DEVICE_ID));
    }
    serial_puts("\n");
    for (uint64_t round = 1; rounds == 0 || round <= rounds; round++) {
        for (int i = 0; i < found; i++) {
            attack(slots[i], (enum attack)((round + (uint64_t)i) % ATTACKS));
        }
        serial_puts("round ");
        serial_decimal(round);
        serial_puts("\n");
    }
    return 0;
}
