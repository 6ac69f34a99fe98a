package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.FileInputStream;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

/** The host bounds the fuzz targets rely on see what they are meant to catch. */
class FuzzBoundsTest {

    /** The descriptor count (one stat of /proc/self/fd where the kernel gives it) follows opens and closes. */
    @Test
    void openFdsCountsEveryDescriptorOpenedAndClosed() throws Exception {
        int before = FuzzBounds.openFds();
        List<FileInputStream> open = new ArrayList<>();
        try {
            for (int i = 0; i < 5; i++) {
                open.add(new FileInputStream("/dev/null"));
            }
            assertEquals(before + 5, FuzzBounds.openFds());
        } finally {
            for (FileInputStream f : open) {
                f.close();
            }
        }
        assertEquals(before, FuzzBounds.openFds());
    }

    /** A target that keeps a descriptor per input is a finding once it holds more than the slack. */
    @Test
    void aTargetThatLeaksDescriptorsFails() throws Exception {
        List<FileInputStream> leaked = new ArrayList<>();
        FuzzBounds bounds = new FuzzBounds("leaky", FuzzBounds.Limits.defaults(), input -> {
            if (input.length > 0) {
                leaked.add(new FileInputStream("/dev/null"));
            }
        });
        try {
            assertThrows(AssertionError.class, () -> {
                for (int i = 0; i < 10_000; i++) {
                    bounds.run(new byte[] {1});
                }
            });
        } finally {
            for (FileInputStream f : leaked) {
                f.close();
            }
        }
    }
}
