/*
 * ticker.elf: a well-behaved neighbour. It prints "tick N\n" on the console (slot 0, see vconsole.h) as
 * fast as the device takes it, so the host can tell how much work it got done while other VMs in the same
 * process misbehave. It runs until the host stops it.
 */
#include "guest.h"
#include "vconsole.h"

static char line[8 + 20 + 2];

int main(void)
{
    if (vconsole_init() != 0) {
        return 0xee;
    }
    for (uint64_t n = 1;; n++) {
        int at = 0;
        for (const char *p = "tick "; *p; p++) {
            line[at++] = *p;
        }
        char digits[20];
        int d = 0;
        uint64_t v = n;
        do {
            digits[d++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        while (d > 0) {
            line[at++] = digits[--d];
        }
        line[at++] = '\n';
        if (vconsole_write(line, (uint32_t)at) != 0) {
            return 0x01;
        }
    }
}
