package org.krun.api;

import java.awt.image.BufferedImage;
import java.util.Objects;

/**
 * One picture of a scanout: {@code width * height} pixels as 0xAARRGGBB, row after row, top row first.
 * Pixels of formats without alpha have alpha 0xff.
 *
 * @param width the width in pixels
 * @param height the height in pixels
 * @param argb the pixels (the record owns this array: callers must not change it)
 * @param sequence counts the scanout's changes: a later frame has a larger number
 * @since 1.5
 */
public record Frame(int width, int height, int[] argb, long sequence) {

    public Frame {
        Objects.requireNonNull(argb, "argb");
        if (width <= 0 || height <= 0 || (long) width * height != argb.length) {
            throw new IllegalArgumentException("a " + width + "x" + height + " frame has " + argb.length + " pixels");
        }
    }

    /** The pixel at ({@code x}, {@code y}) as 0xAARRGGBB. */
    public int pixel(int x, int y) {
        Objects.checkIndex(x, width);
        Objects.checkIndex(y, height);
        return argb[y * width + x];
    }

    /** The frame as an image (TYPE_INT_RGB: alpha dropped), for {@code javax.imageio.ImageIO.write(image, "png", file)}. */
    public BufferedImage toImage() {
        BufferedImage image = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
        image.setRGB(0, 0, width, height, argb, 0, width);
        return image;
    }
}
