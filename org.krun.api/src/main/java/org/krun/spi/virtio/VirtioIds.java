package org.krun.spi.virtio;

/** Device type ids (virtio 1.2 §5). */
public final class VirtioIds {
    public static final int NET = 1;
    public static final int BLOCK = 2;
    public static final int CONSOLE = 3;
    public static final int ENTROPY = 4;
    public static final int BALLOON = 5;
    public static final int GPU = 16;
    public static final int VSOCK = 19;
    public static final int SOUND = 25;
    public static final int FS = 26;

    private VirtioIds() {
    }
}
