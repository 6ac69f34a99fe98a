package org.krun.device.gpu.internal;

/**
 * The 2D resource formats (virtio 1.2 §5.7.6.8, enum virtio_gpu_formats): four bytes a pixel, named by their
 * bytes in memory order. Linux's driver uses B8G8R8X8 for its planes (DRM_FORMAT_XRGB8888) and B8G8R8A8 for
 * cursors; the others are accepted as QEMU accepts them.
 */
enum PixelFormat {
    B8G8R8A8_UNORM(1, true),
    B8G8R8X8_UNORM(2, false),
    A8R8G8B8_UNORM(3, true),
    X8R8G8B8_UNORM(4, false),
    R8G8B8A8_UNORM(67, true),
    X8B8G8R8_UNORM(68, false),
    A8B8G8R8_UNORM(121, true),
    R8G8B8X8_UNORM(134, false);

    static final int BYTES_PER_PIXEL = 4;

    private final int id;
    private final boolean alpha;

    PixelFormat(int id, boolean alpha) {
        this.id = id;
        this.alpha = alpha;
    }

    int id() {
        return id;
    }

    /** The format with virtio id {@code id}, or null. */
    static PixelFormat of(int id) {
        for (PixelFormat f : values()) {
            if (f.id == id) {
                return f;
            }
        }
        return null;
    }

    /**
     * Turns pixels read as little-endian 32-bit words into 0xAARRGGBB, in place; formats without alpha get
     * alpha 0xff.
     */
    void toArgb(int[] pixels, int from, int count) {
        for (int i = from; i < from + count; i++) {
            pixels[i] = toArgb(pixels[i]);
        }
    }

    /** One pixel, its four bytes read as a little-endian word, as 0xAARRGGBB. */
    int toArgb(int word) {
        int argb = switch (this) {
            // bytes B G R A: the little-endian word is already A R G B
            case B8G8R8A8_UNORM, B8G8R8X8_UNORM -> word;
            // bytes A R G B: the word is B G R A
            case A8R8G8B8_UNORM, X8R8G8B8_UNORM -> Integer.reverseBytes(word);
            // bytes R G B A: the word is A B G R
            case R8G8B8A8_UNORM, R8G8B8X8_UNORM -> swapRedBlue(word);
            // bytes A B G R: the word is R G B A
            case A8B8G8R8_UNORM, X8B8G8R8_UNORM -> swapRedBlue(Integer.reverseBytes(word));
        };
        return alpha ? argb : argb | 0xff000000;
    }

    private static int swapRedBlue(int abgr) {
        return (abgr & 0xff00ff00) | ((abgr >>> 16) & 0xff) | ((abgr & 0xff) << 16);
    }
}
