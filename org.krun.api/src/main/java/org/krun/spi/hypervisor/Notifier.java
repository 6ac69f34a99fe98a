package org.krun.spi.hypervisor;

import java.util.Objects;

import org.osgi.annotation.versioning.ProviderType;

/**
 * A host event object between the guest and the VMM: the hypervisor signals it when the guest writes an
 * {@link IoEventAddress} (a queue doorbell), or the VMM signals it to raise an interrupt, in both cases
 * without a vCPU exit. The core makes notifiers from its own platform's event primitive (an eventfd on
 * Linux) and names the primitive in {@link #handle()}; a backend hands a primitive its hypervisor knows to
 * the hypervisor, and refuses others, and the core then takes the slower path (the vCPU exit for the
 * write, {@link HypervisorVm#setIrqLine} for the interrupt). This keeps the SPI free of platform types.
 */
@ProviderType
public interface Notifier {

    /** Signals the event from the VMM side. Safe from any thread. */
    void signal();

    /** The host primitive behind this notifier. */
    Handle handle();

    /**
     * A host event primitive.
     *
     * @param kind what the value is ({@link #EVENTFD}; other platforms name their own)
     * @param value the primitive itself (a file descriptor number for {@link #EVENTFD})
     */
    record Handle(String kind, long value) {
        /** A Linux eventfd(2) descriptor. */
        public static final String EVENTFD = "eventfd";

        public Handle {
            Objects.requireNonNull(kind, "kind");
        }
    }
}
