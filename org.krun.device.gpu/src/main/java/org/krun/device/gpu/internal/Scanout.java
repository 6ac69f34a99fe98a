package org.krun.device.gpu.internal;

import java.util.List;
import java.util.Optional;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.function.Consumer;

import org.krun.api.Display;
import org.krun.api.Frame;

/**
 * One scanout as the host sees it: a copy of the pixels of the resource rectangle the guest set on it, as
 * 0xAARRGGBB, updated on each flush. The device writes on its event loop; readers on any thread take
 * copies under the lock.
 */
final class Scanout implements Display {

    private final int index;
    /** The largest last frame kept after the scanout goes off: the configured size, not the guest's choice. */
    private final long maxKeptPixels;
    private final List<Consumer<Long>> listeners = new CopyOnWriteArrayList<>();
    private final System.Logger log = System.getLogger(Scanout.class.getName());
    /** What is shown: the resource and its rectangle, or 0 while disabled. */
    private int resourceId;
    private Rect rect;
    private int[] argb;
    private long sequence;
    /**
     * The last frame shown before the scanout was disabled (or replaced), kept for screenshots when it is no
     * larger than the configured size: what a VM keeps of its pictures beyond the device's budget is bounded
     * by its configuration.
     */
    private Frame last;

    Scanout(int index, long maxKeptPixels) {
        this.index = index;
        this.maxKeptPixels = maxKeptPixels;
    }

    @Override
    public int index() {
        return index;
    }

    @Override
    public synchronized Optional<Frame> frame() {
        return argb == null ? Optional.empty()
                : Optional.of(new Frame((int) rect.width(), (int) rect.height(), argb.clone(), sequence));
    }

    /** What {@link #frame()} returns while enabled; the last frame shown otherwise (empty if never). */
    @Override
    public synchronized Optional<Frame> lastFrame() {
        return argb != null ? frame() : Optional.ofNullable(last);
    }

    @Override
    public AutoCloseable onChange(Consumer<Long> listener) {
        listeners.add(listener);
        return () -> listeners.remove(listener);
    }

    synchronized int resourceId() {
        return resourceId;
    }

    synchronized Rect rect() {
        return rect;
    }

    /** Host bytes the scanout's copy takes. */
    /** Host bytes the copies of all of {@code scanouts} take now. */
    static long hostBytes(List<Scanout> scanouts) {
        long bytes = 0;
        for (Scanout s : scanouts) {
            bytes += s.hostBytes();
        }
        return bytes;
    }

    synchronized long hostBytes() {
        return argb == null ? 0 : 4L * argb.length;
    }

    /** Shows {@code rect} of {@code resource} (on the loop): copies it whole. */
    void show(Resource resource, Rect rect) {
        synchronized (this) {
            keepLast();
            this.resourceId = resource.id;
            this.rect = rect;
            this.argb = new int[Math.toIntExact(rect.width() * rect.height())];
            copy(resource, rect);
            sequence++;
        }
        changed();
    }

    /** The guest flushed {@code flushed} of the resource shown here (on the loop): copies the overlap. */
    void flush(Resource resource, Rect flushed) {
        synchronized (this) {
            if (argb == null || resource.id != resourceId) {
                return;
            }
            Rect overlap = flushed.intersect(rect);
            if (overlap.isEmpty()) {
                return;
            }
            copy(resource, overlap);
            sequence++;
        }
        changed();
    }

    /** Copies {@code area} (resource coordinates, inside this scanout's rectangle) from the resource. */
    private void copy(Resource resource, Rect area) {
        int w = (int) area.width();
        for (long y = area.y(); y < area.y() + area.height(); y++) {
            long from = y * resource.stride() + area.x() * PixelFormat.BYTES_PER_PIXEL;
            int to = (int) ((y - rect.y()) * rect.width() + (area.x() - rect.x()));
            resource.readArgb(from, argb, to, w);
        }
    }

    /** Turns the scanout off (on the loop): the guest set resource 0, unref'd its resource, or reset. */
    void disable() {
        synchronized (this) {
            if (argb == null) {
                return;
            }
            keepLast();
            resourceId = 0;
            rect = null;
            argb = null;
            sequence++;
        }
        changed();
    }

    private void keepLast() {
        if (argb != null) {
            last = argb.length <= maxKeptPixels ? new Frame((int) rect.width(), (int) rect.height(), argb, sequence) : null;
        }
    }

    private void changed() {
        long seq;
        synchronized (this) {
            seq = sequence;
        }
        for (Consumer<Long> l : listeners) {
            try {
                l.accept(seq);
            } catch (RuntimeException e) {
                log.log(System.Logger.Level.WARNING, "display listener failed: " + e);
            }
        }
    }
}
