package org.krun.device.gpu.internal;

/**
 * struct virtio_gpu_rect: le32 x, y, width, height, each unsigned; held as longs so that sums of guest
 * values cannot overflow.
 */
record Rect(long x, long y, long width, long height) {

    static Rect of(int x, int y, int width, int height) {
        return new Rect(x & 0xffffffffL, y & 0xffffffffL, width & 0xffffffffL, height & 0xffffffffL);
    }

    /** Whether this rectangle lies inside a {@code w} by {@code h} area (an empty one anywhere inside). */
    boolean within(long w, long h) {
        return x <= w && y <= h && width <= w - x && height <= h - y;
    }

    boolean isEmpty() {
        return width == 0 || height == 0;
    }

    /** The overlap with {@code o}, possibly empty. */
    Rect intersect(Rect o) {
        long x0 = Math.max(x, o.x);
        long y0 = Math.max(y, o.y);
        long x1 = Math.min(x + width, o.x + o.width);
        long y1 = Math.min(y + height, o.y + o.height);
        return new Rect(x0, y0, Math.max(0, x1 - x0), Math.max(0, y1 - y0));
    }
}
