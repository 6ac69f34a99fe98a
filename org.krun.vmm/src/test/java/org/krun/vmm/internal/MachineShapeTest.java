package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;

import java.nio.file.Path;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.api.VmConfig;
import org.krun.spi.virtio.AbstractVirtioDevice;
import org.krun.spi.virtio.VirtioIds;

/**
 * A VM's shape (what a snapshot or template must match) names devices by type, never by their host side: a
 * disk over another image restores the same snapshot and shares the same template.
 */
class MachineShapeTest {
    private static final class Disk extends AbstractVirtioDevice<Void> {
        Disk(String image, long features) {
            super("disk " + image, VirtioIds.BLOCK, features, 1, 128, 60);
        }

        @Override
        protected Void onActivate(Active<Void> a) {
            return null;
        }

        @Override
        protected void onQueueNotify(Active<Void> a, int queue) {
        }
    }

    private static final VmConfig CONFIG = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true").build();

    @Test
    void aDisksImagePathIsNotPartOfTheShapeButItsFeaturesAre() {
        String a = Machine.shape(CONFIG, List.of(new Disk("/images/a.img", 0)));
        String b = Machine.shape(CONFIG, List.of(new Disk("/elsewhere/b.qcow2", 0)));
        assertEquals(a, b);
        assertFalse(a.contains("a.img"), a);
        assertEquals(CONFIG.memoryMib() + " MiB, 1 vCPU, devices [block (type 2, 1 queues, features 0x0)]", a);
        assertNotEquals(a, Machine.shape(CONFIG, List.of(new Disk("/images/a.img", 1L << 5))), "read-only is a feature");
    }
}
