/*
 * shm.elf: a virtio-mmio shared memory region (virtio 1.2 §4.2.2) whose host memory comes and goes while
 * the guest runs. Finds the test's probe device (SharedMemoryGuestTest), reads its regions' registers,
 * drives it to DRIVER_OK, maps region 1 with a 2 MiB page, and asks the device (config byte 0: 1 map,
 * 2 unmap) to map and unmap a host page at offset 0 between its reads. Reports one bit per check (all: 0x7f).
 */
#include "guest.h"
#include "virtio_mmio.h"

#define PROBE_DEVICE_ID 0x3f
#define PROBE_SLOTS 4
#define PROBE_COMMAND VIRTIO_MMIO_CONFIG
#define PROBE_ACTIVE VIRTIO_MMIO_CONFIG /* reads 1 once the device has its activation */
#define COMMAND_MAP 1
#define COMMAND_UNMAP 2
#define REGION_LENGTH 0x200000UL
#define HOST_MAGIC 0x6b72756eU /* "krun", written by the host into its page */
#define GUEST_MARK 0x600dU

#define CHECK_ABSENT_ALL_ONES 0x01
#define CHECK_REGION_PLACED 0x02
#define CHECK_HOLE_ALL_ONES 0x04
#define CHECK_MAPPED_HOST_PAGE 0x08
#define CHECK_UNMAPPED_ALL_ONES 0x10
#define CHECK_REMAPPED_KEEPS_WRITE 0x20
#define CHECK_ACTIVATED 0x40

#define PTE_PRESENT 0x1UL
#define PTE_WRITABLE 0x2UL
#define PTE_LARGE 0x80UL
#define BOOT_PDPT 0xa000UL

static uint64_t shm_page_directory[512] __attribute__((aligned(4096)));

static uint64_t device;

static uint32_t reg(uint32_t offset)
{
    return mmio_read32(device + offset);
}

static void set(uint32_t offset, uint32_t value)
{
    mmio_write32(device + offset, value);
}

static uint64_t region_register(uint32_t id, uint32_t low)
{
    set(VIRTIO_MMIO_SHM_SEL, id);
    return (uint64_t)reg(low) | (uint64_t)reg(low + 4) << 32;
}

int main(void)
{
    map_mmio_window();
    int status = 0;
    for (uint64_t n = 0; n < PROBE_SLOTS && device == 0; n++) {
        uint64_t base = VIRTIO_MMIO_BASE + n * VIRTIO_MMIO_SIZE;
        if (mmio_read32(base + VIRTIO_MMIO_DEVICE_ID) == PROBE_DEVICE_ID) {
            device = base;
        }
    }
    if (device == 0) {
        return status;
    }
    if (region_register(0, VIRTIO_MMIO_SHM_LEN_LOW) == ~0UL && region_register(2, VIRTIO_MMIO_SHM_LEN_LOW) == ~0UL) {
        status |= CHECK_ABSENT_ALL_ONES;
    }
    uint64_t length = region_register(1, VIRTIO_MMIO_SHM_LEN_LOW);
    uint64_t base = region_register(1, VIRTIO_MMIO_SHM_BASE_LOW);
    if (length != REGION_LENGTH || base < 0x100000000UL || base >= 0x8000000000UL || (base & (REGION_LENGTH - 1)) != 0) {
        return status;
    }
    status |= CHECK_REGION_PLACED;

    set(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
    set(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    set(VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
    set(VIRTIO_MMIO_DRIVER_FEATURES, VIRTIO_F_VERSION_1_HIGH);
    set(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    set(VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK
            | VIRTIO_STATUS_DRIVER_OK);
    for (int i = 0; i < 100000 && mmio_read32(device + PROBE_ACTIVE) != 1; i++) {
    }
    if (mmio_read32(device + PROBE_ACTIVE) != 1) {
        return status;
    }
    status |= CHECK_ACTIVATED;

    /* One 2 MiB page for the region, in the boot PDPT's entry for its GiB. */
    shm_page_directory[(base >> 21) & 511] = base | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE;
    volatile uint64_t *pdpt = (volatile uint64_t *)BOOT_PDPT;
    pdpt[base >> 30] = (uint64_t)shm_page_directory | PTE_PRESENT | PTE_WRITABLE;
    uint64_t cr3;
    __asm__ volatile("mov %%cr3, %0; mov %0, %%cr3" : "=r"(cr3) : : "memory");

    volatile uint32_t *shm = (volatile uint32_t *)base;
    if (shm[0] == 0xffffffffU) {
        status |= CHECK_HOLE_ALL_ONES; /* nothing mapped yet: an MMIO exit nobody claims */
    }
    mmio_write32(device + PROBE_COMMAND, COMMAND_MAP);
    if (shm[0] == HOST_MAGIC) {
        status |= CHECK_MAPPED_HOST_PAGE;
    }
    shm[1] = GUEST_MARK;
    mmio_write32(device + PROBE_COMMAND, COMMAND_UNMAP);
    if (shm[0] == 0xffffffffU && shm[1] == 0xffffffffU) {
        status |= CHECK_UNMAPPED_ALL_ONES;
    }
    mmio_write32(device + PROBE_COMMAND, COMMAND_MAP);
    if (shm[1] == GUEST_MARK && shm[0] == HOST_MAGIC) {
        status |= CHECK_REMAPPED_KEEPS_WRITE;
    }
    return status;
}
