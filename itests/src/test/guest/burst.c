/*
 * burst.elf: a guest that does some I/O and then goes idle, as a booted system does. It drives the
 * console at slot 0 (see vconsole.h), finds the first virtio-blk and the first virtio-fs device, and sends
 * each BURST requests one after another (a sector read; a FUSE GETATTR of the root), waiting for each reply
 * by polling the used ring (their interrupts are not routed) and a moment more before the next. Then it prints
 * "idle blk=N fs=M\n" (the requests that got a reply) and waits in hlt for a line of console input, which
 * it echoes before exiting with 0. Exit status 0xee: the console could not be set up.
 */
#include "guest.h"
#include "vconsole.h"
#include "virtio_mmio.h"

#define SLOTS 24
#define BURST 32
#define QN 8
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_FS 26
#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define FS_REQUEST_QUEUE 1
#define FUSE_GETATTR 3
#define FUSE_ROOT_ID 1
#define POLL_LIMIT 200000000UL
/* TSC ticks between a reply and the next request (about a millisecond at 2-3 GHz). */
#define PAUSE_TICKS 2000000UL

struct desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[QN];
    uint16_t used_event;
};

struct used_elem {
    uint32_t id;
    uint32_t len;
};

struct used {
    uint16_t flags;
    uint16_t idx;
    struct used_elem ring[QN];
    uint16_t avail_event;
};

/* One page per queue: descriptors at 0, avail at 1024, used at 2048. */
struct __attribute__((aligned(4096))) queue_page {
    struct desc desc[QN];
    uint8_t pad1[1024 - QN * sizeof(struct desc)];
    struct avail avail;
    uint8_t pad2[1024 - sizeof(struct avail)];
    struct used used;
};

static struct queue_page blk_queue;
static struct queue_page fs_queues[2];
static uint8_t blk_header[16];
static uint8_t blk_data[512];
static uint8_t blk_status;
static uint8_t fs_in[40 + 16];
static uint8_t fs_out[16 + 104];
static char line[64];
static char report[64];

static inline uint64_t rdtsc(void)
{
    uint32_t lo, hi;
    __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        p[i] = (uint8_t)(v >> (8 * i));
    }
}

static void put64(uint8_t *p, uint64_t v)
{
    put32(p, (uint32_t)v);
    put32(p + 4, (uint32_t)(v >> 32));
}

static uint64_t find(uint32_t device_id)
{
    for (int n = 0; n < SLOTS; n++) {
        uint64_t base = VIRTIO_MMIO_BASE + (uint64_t)n * VIRTIO_MMIO_SIZE;
        if (mmio_read32(base + VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC
                && mmio_read32(base + VIRTIO_MMIO_DEVICE_ID) == device_id) {
            return base;
        }
    }
    return 0;
}

static void set_queue(uint64_t base, int index, struct queue_page *q)
{
    mmio_write32(base + VIRTIO_MMIO_QUEUE_SEL, (uint32_t)index);
    mmio_write32(base + VIRTIO_MMIO_QUEUE_NUM, QN);
    uint64_t d = (uint64_t)q->desc, a = (uint64_t)&q->avail, u = (uint64_t)&q->used;
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)d);
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(d >> 32));
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DRIVER_LOW, (uint32_t)a);
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DRIVER_HIGH, (uint32_t)(a >> 32));
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DEVICE_LOW, (uint32_t)u);
    mmio_write32(base + VIRTIO_MMIO_QUEUE_DEVICE_HIGH, (uint32_t)(u >> 32));
    mmio_write32(base + VIRTIO_MMIO_QUEUE_READY, 1);
}

/* virtio 1.2 §3.1.1 with VIRTIO_F_VERSION_1 only; returns 1 when the device took DRIVER_OK, else 0. */
static int start_device(uint64_t base, int queues, struct queue_page *q)
{
    mmio_write32(base + VIRTIO_MMIO_STATUS, 0);
    mmio_write32(base + VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    mmio_write32(base + VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HIGH);
    mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
    mmio_write32(base + VIRTIO_MMIO_DRIVER_FEATURES, 0);
    mmio_write32(base + VIRTIO_MMIO_STATUS,
            VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    if (!(mmio_read32(base + VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_FEATURES_OK)) {
        return 0;
    }
    for (int i = 0; i < queues; i++) {
        set_queue(base, i, &q[i]);
    }
    mmio_write32(base + VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER
            | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    return (mmio_read32(base + VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET) == 0;
}

/* Makes the chain at descriptor 0 available, notifies, waits for it to be used; returns whether it was. */
static int send(uint64_t base, int index, struct queue_page *q)
{
    uint16_t idx = q->avail.idx;
    q->avail.ring[idx % QN] = 0;
    barrier();
    *(volatile uint16_t *)&q->avail.idx = (uint16_t)(idx + 1);
    barrier();
    mmio_write32(base + VIRTIO_MMIO_QUEUE_NOTIFY, (uint32_t)index);
    for (uint64_t spins = 0; *(volatile uint16_t *)&q->used.idx != (uint16_t)(idx + 1); spins++) {
        if (spins > POLL_LIMIT) {
            return 0;
        }
    }
    uint64_t until = rdtsc() + PAUSE_TICKS;
    while (rdtsc() < until) {
        barrier();
    }
    return 1;
}

static int blk_burst(void)
{
    uint64_t base = find(VIRTIO_ID_BLOCK);
    if (!base || !start_device(base, 1, &blk_queue)) {
        return 0;
    }
    put32(blk_header, 0); /* VIRTIO_BLK_T_IN */
    put32(blk_header + 4, 0);
    put64(blk_header + 8, 0); /* sector 0 */
    struct desc *d = blk_queue.desc;
    d[0] = (struct desc){(uint64_t)blk_header, sizeof(blk_header), VIRTQ_DESC_F_NEXT, 1};
    d[1] = (struct desc){(uint64_t)blk_data, sizeof(blk_data), VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 2};
    d[2] = (struct desc){(uint64_t)&blk_status, 1, VIRTQ_DESC_F_WRITE, 0};
    int ok = 0;
    for (int i = 0; i < BURST; i++) {
        blk_status = 0xff;
        if (send(base, 0, &blk_queue) && blk_status == 0) {
            ok++;
        }
    }
    return ok;
}

static int fs_burst(void)
{
    uint64_t base = find(VIRTIO_ID_FS);
    if (!base || !start_device(base, 2, fs_queues)) {
        return 0;
    }
    /* struct fuse_in_header, then struct fuse_getattr_in (all zero) */
    put32(fs_in, sizeof(fs_in));
    put32(fs_in + 4, FUSE_GETATTR);
    put64(fs_in + 16, FUSE_ROOT_ID);
    struct desc *d = fs_queues[FS_REQUEST_QUEUE].desc;
    d[0] = (struct desc){(uint64_t)fs_in, sizeof(fs_in), VIRTQ_DESC_F_NEXT, 1};
    d[1] = (struct desc){(uint64_t)fs_out, sizeof(fs_out), VIRTQ_DESC_F_WRITE, 0};
    int ok = 0;
    for (int i = 0; i < BURST; i++) {
        put64(fs_in + 8, (uint64_t)i + 1); /* unique */
        fs_out[0] = 0;
        if (send(base, FS_REQUEST_QUEUE, &fs_queues[FS_REQUEST_QUEUE]) && fs_out[0] != 0) {
            ok++; /* a reply, whatever it says */
        }
    }
    return ok;
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

static int append(char *out, int at, const char *s)
{
    while (*s) {
        out[at++] = *s++;
    }
    return at;
}

int main(void)
{
    if (vconsole_init() != 0) {
        return 0xee;
    }
    int blk = blk_burst();
    int fs = fs_burst();
    int at = append(report, 0, "idle blk=");
    at = append_decimal(report, at, (uint32_t)blk);
    at = append(report, at, " fs=");
    at = append_decimal(report, at, (uint32_t)fs);
    report[at++] = '\n';
    vconsole_write(report, (uint32_t)at);
    vconsole_read_line(line, sizeof(line));
    vconsole_puts(line);
    return 0;
}
