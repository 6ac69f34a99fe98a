/*
 * mmio.elf: MMIO exits. Reads the virtio-mmio registers and config space of device 0 (krun's console,
 * 80x24 terminal) and two unclaimed MMIO addresses, and reports one bit per check that passed (all: 0x7f).
 */
#include "guest.h"
#include "virtio_mmio.h"

#define CONSOLE_CONFIG_COLS (VIRTIO_MMIO_CONFIG + 0)
#define CONSOLE_CONFIG_ROWS (VIRTIO_MMIO_CONFIG + 2)
#define UNCLAIMED_SLOT (VIRTIO_MMIO_BASE + VIRTIO_MMIO_SIZE) /* device 1: none configured */
#define UNCLAIMED_WINDOW 0xe0000000UL

#define CHECK_MAGIC 0x01
#define CHECK_VERSION 0x02
#define CHECK_DEVICE_ID 0x04
#define CHECK_VENDOR_ID 0x08
#define CHECK_UNCLAIMED_ALL_ONES 0x10
#define CHECK_CONFIG_TERMINAL_SIZE 0x20
#define CHECK_OFFERS_VERSION_1 0x40

static uint32_t reg(uint32_t offset)
{
    return mmio_read32(VIRTIO_MMIO_BASE + offset);
}

int main(void)
{
    map_mmio_window();
    int status = 0;
    if (reg(VIRTIO_MMIO_MAGIC_VALUE) == VIRTIO_MMIO_MAGIC) {
        status |= CHECK_MAGIC;
    }
    if (reg(VIRTIO_MMIO_VERSION) == 2) {
        status |= CHECK_VERSION;
    }
    if (reg(VIRTIO_MMIO_DEVICE_ID) == VIRTIO_ID_CONSOLE) {
        status |= CHECK_DEVICE_ID;
    }
    if (reg(VIRTIO_MMIO_VENDOR_ID) == KRUN_VENDOR_ID) {
        status |= CHECK_VENDOR_ID;
    }
    if (mmio_read32(UNCLAIMED_SLOT) == 0xffffffffU && mmio_read32(UNCLAIMED_WINDOW) == 0xffffffffU) {
        status |= CHECK_UNCLAIMED_ALL_ONES;
    }
    if (mmio_read16(VIRTIO_MMIO_BASE + CONSOLE_CONFIG_COLS) == 80
            && mmio_read16(VIRTIO_MMIO_BASE + CONSOLE_CONFIG_ROWS) == 24) {
        status |= CHECK_CONFIG_TERMINAL_SIZE;
    }
    mmio_write32(VIRTIO_MMIO_BASE + VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
    if ((reg(VIRTIO_MMIO_DEVICE_FEATURES) & VIRTIO_F_VERSION_1_HIGH) != 0) {
        status |= CHECK_OFFERS_VERSION_1;
    }
    return status;
}
