package org.krun.spi.virtio;

import java.nio.ByteBuffer;
import org.osgi.annotation.versioning.ConsumerType;

/**
 * A {@link VirtioDevice} whose state can go into a VM snapshot and come back in a new VM. The transport
 * saves and restores the generic half itself (status, features, queue addresses and indices, interrupt
 * status, config generation); the device saves only what is its own (a console's port state, a device's
 * configuration space that the driver may change). A VM with a device that does not implement this is
 * refused a snapshot with a one-line error naming the device.
 *
 * <p>A device that holds descriptor chains between queue notifications (taken from the available ring,
 * not yet returned to the used ring) or runs requests on other threads must either finish them before
 * {@link #saveState()} returns, or save where each held chain is in the available ring and take them again on
 * restore (virtio-snd, whose messages wait for their time, moves its queue back with
 * {@link Virtqueue#restoreIndices} and pops again), or not implement this interface: a chain the device had
 * taken would be lost in the restored VM. A device built on {@link AbstractVirtioDevice} that serves requests off the loop drains
 * them with {@link AbstractVirtioDevice.Active#awaitIdle} and, when they do not finish in time, throws
 * {@link IllegalStateException} with one line naming itself: the snapshot is refused. So does a device
 * whose current state cannot be carried (host descriptors, sockets).
 *
 * @since 1.2
 */
@ConsumerType
public interface SnapshottableDevice extends VirtioDevice {

    /**
     * The device's own state, at most {@link #MAX_STATE_BYTES} bytes. Called on the VM's event loop while
     * every vCPU is paused.
     */
    byte[] saveState();

    /**
     * Restores what {@link #saveState()} gave, on a new device made from the same specification. Called on
     * the new VM's event loop once, before its vCPUs run: after {@link #activate(DeviceContext)} (with the
     * queues at their saved indices) when the saved device was active, otherwise on the inactive device.
     *
     * @throws IllegalArgumentException when {@code state} is not one this device wrote, or does not fit
     *         how this device is configured (one line): the restore fails with it, naming the device, before
     *         any vCPU runs, and the new VM is released
     */
    void restoreState(byte[] state);

    /** The most bytes a device's saved state may have (a snapshot reader's bound). */
    int MAX_STATE_BYTES = 1 << 20;

    /**
     * Opens a fixed-size state written as a 4-byte version followed by the device's fields: checks that
     * {@code state} has exactly {@code bytes} bytes and starts with {@code version}.
     *
     * @param device the device's name, for the message
     * @return a big-endian buffer over {@code state}, positioned after the version
     * @throws IllegalArgumentException (one line naming {@code device}) when the length or version differs
     */
    static ByteBuffer openState(String device, byte[] state, int bytes, int version) {
        if (state.length != bytes) {
            throw new IllegalArgumentException(device + ": saved state has " + state.length + " bytes, not " + bytes);
        }
        ByteBuffer b = ByteBuffer.wrap(state);
        int saved = b.getInt();
        if (saved != version) {
            throw new IllegalArgumentException(device + ": saved state version " + saved + " (this krun reads " + version + ")");
        }
        return b;
    }
}
