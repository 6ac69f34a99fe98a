/*
 * portio.elf: port I/O exits. Reads krun's CMOS clock (0x70/0x71), the serial line status (0x3fd) and an
 * unclaimed port, and reports one bit per check that passed on the exit-status port (all: 0x3f).
 */
#include "guest.h"

#define CMOS_SECONDS 0x00
#define CMOS_MINUTES 0x02
#define CMOS_HOURS 0x04
#define CMOS_STATUS_A 0x0a
#define CMOS_STATUS_B 0x0b
#define CMOS_STATUS_D 0x0d
#define STATUS_A_UIP 0x80
#define STATUS_B_24H 0x02
#define STATUS_B_BINARY 0x04
#define STATUS_D_VALID 0x80
#define SERIAL_LSR (COM1 + 5)
#define UNCLAIMED_PORT 0x510

#define CHECK_UIP_CLEAR 0x01
#define CHECK_BCD_24H 0x02
#define CHECK_TIME_IS_BCD 0x04
#define CHECK_CMOS_VALID 0x08
#define CHECK_SERIAL_IDLE 0x10
#define CHECK_UNCLAIMED_ALL_ONES 0x20

static uint8_t cmos_read(uint8_t index)
{
    outb(CMOS_INDEX_PORT, index);
    return inb(CMOS_DATA_PORT);
}

static int is_bcd_below(uint8_t value, uint8_t limit_bcd)
{
    return (value & 0x0f) <= 9 && (value >> 4) <= 9 && value < limit_bcd;
}

int main(void)
{
    int status = 0;
    if ((cmos_read(CMOS_STATUS_A) & STATUS_A_UIP) == 0) {
        status |= CHECK_UIP_CLEAR;
    }
    uint8_t b = cmos_read(CMOS_STATUS_B);
    if ((b & STATUS_B_24H) != 0 && (b & STATUS_B_BINARY) == 0) {
        status |= CHECK_BCD_24H;
    }
    if (is_bcd_below(cmos_read(CMOS_SECONDS), 0x60) && is_bcd_below(cmos_read(CMOS_MINUTES), 0x60)
            && is_bcd_below(cmos_read(CMOS_HOURS), 0x24)) {
        status |= CHECK_TIME_IS_BCD;
    }
    if ((cmos_read(CMOS_STATUS_D) & STATUS_D_VALID) != 0) {
        status |= CHECK_CMOS_VALID;
    }
    if (inb(SERIAL_LSR) == 0x60) {
        status |= CHECK_SERIAL_IDLE;
    }
    if (inb(UNCLAIMED_PORT) == 0xff) {
        status |= CHECK_UNCLAIMED_ALL_ONES;
    }
    return status;
}
