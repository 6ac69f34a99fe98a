package org.krun.device.gpu.internal;

import java.nio.charset.StandardCharsets;

/**
 * A 128-byte EDID 1.4 base block (VESA E-EDID) describing a digital display whose preferred mode is the
 * scanout's size, as GET_EDID answers it. Timings follow CVT reduced blanking (160 pixels, about 30 lines
 * of blanking); the refresh rate is 60 Hz, or less where the pixel clock would not fit EDID's 16 bits of
 * 10 kHz units.
 */
final class Edid {

    static final int SIZE = 128;
    private static final int H_BLANK = 160;
    private static final int H_FRONT = 48;
    private static final int H_SYNC = 32;
    private static final int V_BLANK = 30;
    private static final int V_FRONT = 3;
    private static final int V_SYNC = 6;
    /** 96 dpi: millimetres of the picture from pixels. */
    private static final double MM_PER_PIXEL = 25.4 / 96;

    private Edid() {
    }

    /** The EDID of a {@code width} by {@code height} display (sides of 1 to 4095 pixels). */
    static byte[] of(int width, int height, int serial) {
        if (width < 1 || width > 4095 || height < 1 || height > 4095) {
            throw new IllegalArgumentException("EDID cannot describe " + width + "x" + height);
        }
        byte[] e = new byte[SIZE];
        // header
        e[0] = 0;
        for (int i = 1; i < 7; i++) {
            e[i] = (byte) 0xff;
        }
        e[7] = 0;
        // manufacturer "KRN": three 5-bit letters, big-endian
        int id = ((('K' - '@') & 31) << 10) | ((('R' - '@') & 31) << 5) | (('N' - '@') & 31);
        e[8] = (byte) (id >> 8);
        e[9] = (byte) id;
        e[10] = 0x16; // product code, little-endian
        e[11] = 0x00;
        e[12] = (byte) serial;
        e[13] = (byte) (serial >> 8);
        e[14] = (byte) (serial >> 16);
        e[15] = (byte) (serial >> 24);
        e[16] = 1; // week
        e[17] = (byte) (2026 - 1990); // year
        e[18] = 1; // EDID 1.4
        e[19] = 4;
        e[20] = (byte) 0xa5; // digital input, 8 bits per colour, DisplayPort
        int wCm = (int) Math.max(1, Math.round(width * MM_PER_PIXEL / 10));
        int hCm = (int) Math.max(1, Math.round(height * MM_PER_PIXEL / 10));
        e[21] = (byte) Math.min(255, wCm);
        e[22] = (byte) Math.min(255, hCm);
        e[23] = 120; // gamma 2.2
        e[24] = 0x06; // sRGB default, preferred timing is native; RGB 4:4:4
        // chromaticity of sRGB (10-bit fixed point, low bits first)
        byte[] chroma = {(byte) 0xee, (byte) 0x91, (byte) 0xa3, 0x54, 0x4c, (byte) 0x99, 0x26, 0x0f, 0x50, 0x54};
        System.arraycopy(chroma, 0, e, 25, chroma.length);
        // established timings (35-37): none; standard timings (38-53): unused
        for (int i = 38; i < 54; i++) {
            e[i] = 1;
        }
        detailedTiming(e, 54, width, height);
        rangeLimits(e, 72);
        text(e, 90, 0xfc, "krun");
        text(e, 108, 0xfe, "virtio-gpu");
        e[126] = 0; // no extension blocks
        int sum = 0;
        for (int i = 0; i < 127; i++) {
            sum += e[i] & 0xff;
        }
        e[127] = (byte) (256 - (sum & 0xff));
        return e;
    }

    private static void detailedTiming(byte[] e, int at, int w, int h) {
        long hTotal = w + H_BLANK;
        long vTotal = h + V_BLANK;
        int refresh = 60;
        while (refresh > 1 && hTotal * vTotal * refresh / 10_000 > 0xffff) {
            refresh--;
        }
        int clock = (int) (hTotal * vTotal * refresh / 10_000);
        e[at] = (byte) clock;
        e[at + 1] = (byte) (clock >> 8);
        e[at + 2] = (byte) w;
        e[at + 3] = (byte) H_BLANK;
        e[at + 4] = (byte) (((w >> 8) & 0xf) << 4 | ((H_BLANK >> 8) & 0xf));
        e[at + 5] = (byte) h;
        e[at + 6] = (byte) V_BLANK;
        e[at + 7] = (byte) (((h >> 8) & 0xf) << 4 | ((V_BLANK >> 8) & 0xf));
        e[at + 8] = (byte) H_FRONT;
        e[at + 9] = (byte) H_SYNC;
        e[at + 10] = (byte) ((V_FRONT & 0xf) << 4 | (V_SYNC & 0xf));
        e[at + 11] = 0; // high bits of the sync fields
        int wMm = (int) Math.round(w * MM_PER_PIXEL);
        int hMm = (int) Math.round(h * MM_PER_PIXEL);
        e[at + 12] = (byte) wMm;
        e[at + 13] = (byte) hMm;
        e[at + 14] = (byte) (((wMm >> 8) & 0xf) << 4 | ((hMm >> 8) & 0xf));
        e[at + 15] = 0;
        e[at + 16] = 0;
        e[at + 17] = 0x1a; // digital separate sync, -vsync +hsync (CVT-RB)
    }

    /** Display range limits (tag 0xfd): 1-60 Hz vertical, 1-255 kHz horizontal, 655 MHz, no timing formula. */
    private static void rangeLimits(byte[] e, int at) {
        e[at + 3] = (byte) 0xfd;
        e[at + 5] = 1;
        e[at + 6] = 60;
        e[at + 7] = 1;
        e[at + 8] = (byte) 255;
        e[at + 9] = 66; // 660 MHz in 10 MHz units
        e[at + 10] = 1; // range limits only
        e[at + 11] = 0x0a;
        for (int i = 12; i < 18; i++) {
            e[at + i] = 0x20;
        }
    }

    /** A display descriptor of text (tag 0xfc name, 0xfe unspecified text): up to 13 characters, ended by a newline. */
    private static void text(byte[] e, int at, int tag, String s) {
        e[at + 3] = (byte) tag;
        byte[] b = s.getBytes(StandardCharsets.US_ASCII);
        for (int i = 0; i < 13; i++) {
            e[at + 5 + i] = i < b.length ? b[i] : i == b.length ? (byte) 0x0a : 0x20;
        }
    }
}
