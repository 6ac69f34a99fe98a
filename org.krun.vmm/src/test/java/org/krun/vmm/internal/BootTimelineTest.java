package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.krun.vmm.internal.legacy.InitPorts;

class BootTimelineTest {

    @Test
    void theInitsStepsMapToTheirEventsInOrder() {
        assertEquals(BootTimeline.Event.ROOT, BootTimeline.initStep(InitPorts.FIRST_STEP));
        assertEquals(BootTimeline.Event.EXITED, BootTimeline.initStep(InitPorts.LAST_STEP));
        assertEquals(InitPorts.LAST_STEP - InitPorts.FIRST_STEP,
                BootTimeline.Event.EXITED.ordinal() - BootTimeline.Event.ROOT.ordinal());
    }

    @Test
    void theFirstTimeAStepIsReachedIsKeptAndLogged() throws InterruptedException {
        BootTimeline t = new BootTimeline();
        t.mark(BootTimeline.Event.EXEC);
        long first = t.at(BootTimeline.Event.EXEC);
        Thread.sleep(2);
        t.mark(BootTimeline.Event.EXEC);
        assertEquals(first, t.at(BootTimeline.Event.EXEC));
        assertTrue(t.toString().contains(" exec=" + first), t.toString());
        assertTrue(!t.toString().contains("network="), t.toString());
    }
}
