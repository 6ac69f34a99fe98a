package org.krun.device.net.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * bench/net's in-process rig ({@link NetFrameBench.Rig}) moves whole frames of the size asked for each way on
 * both unix backends, with nothing dropped and the rig's own checks quiet; and it stops and closes cleanly.
 * No timing: it waits for a number of frames.
 */
@Timeout(120)
class NetFrameBenchTest {

    @ParameterizedTest
    @CsvSource({"STREAM, 64, true", "STREAM, 64, false", "STREAM, 65534, true", "STREAM, 65534, false",
            "DGRAM, 1514, true", "DGRAM, 1514, false", "DGRAM, 65534, true", "DGRAM, 65534, false"})
    void framesCrossWholeAndCounted(NetFrameBench.Kind kind, int size, boolean transmit) throws Exception {
        try (NetFrameBench.Rig rig = new NetFrameBench.Rig(kind, size, transmit)) {
            rig.start();
            NetDriver.await(() -> rig.frames.get() >= 300 || rig.failure != null, 60, "300 frames");
            rig.stop();
            assertNull(rig.failure);
            VirtioNet.Stats s = rig.device.stats;
            assertEquals(0, s.txDropped + s.rxDropped, s.toString());
            long counted = rig.frames.get();
            long byCard = transmit ? s.txFrames : s.rxFrames;
            // the card counts a frame when the peer or the driver has it; the other side counts it later
            assertTrue(byCard >= counted && counted >= 300, "card " + byCard + ", rig " + counted);
            assertEquals(byCard * size, transmit ? s.txBytes : s.rxBytes);
        }
    }
}
