package org.krun.api;

import java.util.Optional;
import java.util.function.Consumer;

import org.osgi.annotation.versioning.ProviderType;

/**
 * One scanout of a VM's GPU as the host sees it: the pixels the guest last flushed to it. Thread-safe;
 * it stays readable (its last frame) after the VM stopped.
 *
 * @since 1.5
 */
@ProviderType
public interface Display {

    /** The scanout's index on its device (0 for the first). */
    int index();

    /**
     * A copy of what the scanout shows now, or empty while the guest has shown nothing on it (no resource
     * set as its scanout, or the scanout disabled).
     */
    Optional<Frame> frame();

    /**
     * What {@link #frame()} returns while the scanout shows something; otherwise the last frame it showed
     * before the guest turned it off (empty if it never showed anything). A guest program that ends takes
     * its picture with it (Linux turns the scanout off when the program's framebuffer goes), so this is
     * what a screenshot taken after the guest is done wants.
     */
    Optional<Frame> lastFrame();

    /**
     * Calls {@code listener} after each change of the scanout (a flush of what it shows, a new resource
     * set on it, the scanout disabled), with the frame's sequence number; on the device's thread, so a
     * listener must return quickly (take {@link #frame()} or hand off). Closing the returned handle removes it.
     */
    AutoCloseable onChange(Consumer<Long> listener);
}
