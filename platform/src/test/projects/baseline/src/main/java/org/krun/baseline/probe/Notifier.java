package org.krun.baseline.probe;

import java.util.Objects;

import org.osgi.annotation.versioning.ProviderType;

/** A host event object between the guest and the VMM (as org.krun.spi.hypervisor.Notifier). */
@ProviderType
public interface Notifier {

    /** Signals the event from the VMM side. */
    void signal();

    /** The host primitive behind this notifier. */
    Handle handle();

    /** A host event primitive: its kind and value. */
    record Handle(String kind, long value) {
        public Handle {
            Objects.requireNonNull(kind, "kind");
        }
    }
}
