package org.krun.vmm.internal;

import static java.nio.charset.StandardCharsets.US_ASCII;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;

import org.junit.jupiter.api.Test;
import org.krun.api.ConsoleSpec;

class ConsoleTailTest {

    private static String tail(ConsoleTail t) {
        return new String(t.snapshot(), US_ASCII);
    }

    @Test
    void keepsEverythingWhileUnderCapacity() {
        ConsoleTail t = new ConsoleTail(16);
        t.append("hello ".getBytes(US_ASCII), 0, 6);
        t.append("world".getBytes(US_ASCII), 0, 5);
        assertEquals("hello world", tail(t));
    }

    @Test
    void keepsOnlyTheNewestBytesOnceFull() {
        ConsoleTail t = new ConsoleTail(8);
        for (String s : new String[] {"abc", "defg", "hijkl", "m"}) {
            t.append(s.getBytes(US_ASCII), 0, s.length());
        }
        assertEquals("fghijklm", tail(t));
    }

    @Test
    void aWriteLargerThanTheRingKeepsItsEnd() {
        ConsoleTail t = new ConsoleTail(4);
        t.append("xy".getBytes(US_ASCII), 0, 2);
        byte[] big = "0123456789".getBytes(US_ASCII);
        t.append(big, 1, 8);
        assertEquals("5678", tail(t));
        t.append("Z".getBytes(US_ASCII), 0, 1);
        assertEquals("678Z", tail(t));
    }

    @Test
    void emptyTailIsEmpty() {
        assertArrayEquals(new byte[0], new ConsoleTail(4).snapshot());
    }

    @Test
    void teeInterleavesBothStreamsAndPassesBytesOn() throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        ByteArrayOutputStream err = new ByteArrayOutputStream();
        ConsoleTail t = new ConsoleTail(64);
        ConsoleSpec teed = t.tee(ConsoleSpec.pipes(out, err, true));
        teed.stdout().write("out1 ".getBytes(US_ASCII));
        teed.stderr().write('E');
        teed.stdout().write("x out2".getBytes(US_ASCII), 2, 4);
        assertEquals("out1 Eout2", tail(t));
        assertEquals("out1 out2", out.toString(US_ASCII));
        assertEquals("E", err.toString(US_ASCII));
        assertEquals(ConsoleSpec.Mode.PIPES, teed.mode());
        assertEquals(true, teed.input());
    }

    @Test
    void terminalModeKeepsOneStreamForBoth() {
        ConsoleSpec teed = new ConsoleTail(8).tee(ConsoleSpec.terminal(new ByteArrayOutputStream(), 80, 24));
        assertSame(teed.stdout(), teed.stderr());
        assertEquals(80, teed.columns());
        assertEquals(24, teed.rows());
    }

    @Test
    void bytesReachTheTailEvenWhenTheTargetFails() {
        OutputStream failing = new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("broken pipe");
            }
        };
        ConsoleTail t = new ConsoleTail(8);
        ConsoleSpec teed = t.tee(ConsoleSpec.pipes(failing, failing, false));
        assertThrows(IOException.class, () -> teed.stdout().write("abc".getBytes(US_ASCII)));
        assertEquals("abc", tail(t));
    }
}
