package org.krun.vmm.internal.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

class ExitStatusPortTest {

    @Test
    void eachWriteReportsItsLowByteAsTheExitStatus() {
        List<Integer> statuses = new ArrayList<>();
        ExitStatusPort port = new ExitStatusPort(statuses::add);
        port.write(0, 1, 0);
        port.write(0, 1, 127);
        port.write(0, 1, 0x1ff);
        assertEquals(List.of(0, 127, 255), statuses);
    }

    @Test
    void readsAnswerAllOnesAndReportNothing() {
        List<Integer> statuses = new ArrayList<>();
        ExitStatusPort port = new ExitStatusPort(statuses::add);
        assertEquals(0xff, port.read(0, 1));
        assertEquals(List.of(), statuses);
    }

    @Test
    void livesAtPort0xf4LikeQemusIsaDebugExit() {
        assertEquals(0xf4, ExitStatusPort.PORT);
    }
}
