package org.krun.vmm.internal.legacy;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;
import org.krun.vmm.internal.bus.BusDevice;

class InitPortsTest {

    @Test
    void eachStatusWriteReportsItsLowByte() {
        List<Integer> statuses = new ArrayList<>();
        InitPorts ports = new InitPorts(statuses::add, () -> { });
        ports.write(0, 1, 0);
        ports.write(0, 1, 127);
        ports.write(0, 1, 0x1ff);
        assertEquals(List.of(0, 127, 255), statuses);
    }

    @Test
    void theMarkerPortSaysTheInitRunsAndReportsNoStatus() {
        List<Integer> statuses = new ArrayList<>();
        int[] started = {0};
        InitPorts ports = new InitPorts(statuses::add, () -> started[0]++);
        ports.write(1, 1, 1);
        assertEquals(1, started[0]);
        assertEquals(List.of(), statuses);
    }

    @Test
    void theInitsLaterStepsOnTheMarkerPortAreReportedAsStepsNotAsAStart() {
        List<Integer> steps = new ArrayList<>();
        int[] started = {0};
        InitPorts ports = new InitPorts(s -> { }, () -> started[0]++, () -> { }, () -> { }, steps::add);
        ports.write(1, 1, 1);
        for (int step = InitPorts.FIRST_STEP; step <= InitPorts.LAST_STEP; step++) {
            ports.write(1, 1, step);
        }
        ports.write(1, 1, InitPorts.LAST_STEP + 1); // not a step: taken as "the init runs", as before steps existed
        assertEquals(List.of(2, 3, 4, 5, 6, 7), steps);
        assertEquals(2, started[0]);
    }

    @Test
    void readsAnswerAllOnesAndReportNothing() {
        List<Integer> statuses = new ArrayList<>();
        InitPorts ports = new InitPorts(statuses::add, () -> { });
        assertEquals(0xff, ports.read(0, 1));
        assertEquals(0xffff, ports.read(0, 2));
        assertEquals(List.of(), statuses);
    }

    @Test
    void liveAtPorts0xf4And0xf5LikeQemusIsaDebugExit() {
        assertEquals(0xf4, InitPorts.EXIT_STATUS_PORT);
        assertEquals(0xf5, InitPorts.INIT_MARKER_PORT);
    }

    @Test
    void theTemplatePortAnswersZeroUntilTheConfigurationIsReadyThenStreamsItLengthFirst() {
        int[] points = {0};
        int[] read = {0};
        InitPorts ports = new InitPorts(s -> { }, () -> { }, () -> points[0]++, () -> read[0]++);
        ports.write(2, 1, 1);
        assertEquals(1, points[0]);
        assertEquals(0, ports.read(2, 1));
        assertEquals(0xff, ports.read(3, 1), "nothing to read before the configuration is offered");
        ports.offerRunConfig("{}".getBytes(java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(1, ports.read(2, 1));
        assertEquals(List.of(2, 0, 0, 0, (int) '{', (int) '}'), List.of(ports.read(3, 1), ports.read(3, 1), ports.read(3, 1),
                ports.read(3, 1), ports.read(3, 1), ports.read(3, 1)).stream().map(Long::intValue).toList());
        assertEquals(1, read[0], "the last byte read is reported once");
        assertEquals(0xff, ports.read(3, 1), "all ones past the end");
        assertEquals(1, read[0]);
    }

    @Test
    void theConfigWindowHoldsTheLengthThenTheJsonForWideLoadsAndReportsTheReadOnce() {
        int[] read = {0};
        InitPorts ports = new InitPorts(s -> { }, () -> { }, () -> { }, () -> read[0]++);
        BusDevice window = ports.configWindow();
        assertEquals(0, window.read(0, 4), "a length of 0 until the configuration is offered");
        window.write(0, 1, 1);
        assertEquals(0, read[0], "nothing to report before the offer");
        byte[] json = "{\"args\":[\"sh\"]}".getBytes(java.nio.charset.StandardCharsets.UTF_8);
        ports.offerRunConfig(json);
        assertEquals(json.length, window.read(0, 4));
        byte[] back = new byte[(json.length + 8 + 7) / 8 * 8];
        for (int at = 0; at < back.length; at += 8) {
            long word = window.read(4 + at, 8);
            for (int i = 0; i < 8; i++) {
                back[at + i] = (byte) (word >>> (8 * i));
            }
        }
        assertEquals(new String(json, java.nio.charset.StandardCharsets.UTF_8),
                new String(back, 0, json.length, java.nio.charset.StandardCharsets.UTF_8));
        assertEquals(0, back[json.length], "zeros after the end");
        assertEquals(0L, window.read(InitPorts.CONFIG_WINDOW_SIZE - 8, 8));
        window.write(0, 1, 1);
        window.write(0, 1, 1);
        assertEquals(1, read[0], "a guest writing again and again is reported once");
        for (int i = 0; i < 4 + json.length; i++) {
            ports.read(3, 1);
        }
        assertEquals(1, read[0], "reading the port as well reports nothing more");
    }

    @Test
    void theTemplateAndConfigPortsFollowTheOthers() {
        assertEquals(0xf6, InitPorts.TEMPLATE_PORT);
        assertEquals(0xf7, InitPorts.CONFIG_PORT);
    }
}
