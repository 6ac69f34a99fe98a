package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.time.Duration;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;

import org.junit.jupiter.api.Test;

/** krun's output streams losing their reader, and the VM that outlives its grace after that. */
class BrokenPipeTest {

    private static OutputStream failing() {
        return new OutputStream() {
            @Override
            public void write(int b) throws IOException {
                throw new IOException("Broken pipe");
            }
        };
    }

    @Test
    void writesPassThroughUntilOneFails() throws IOException {
        BrokenPipe pipe = new BrokenPipe(Duration.ofMinutes(1));
        ByteArrayOutputStream sink = new ByteArrayOutputStream();
        OutputStream out = pipe.watch(sink);
        out.write(new byte[] {1, 2, 3}, 1, 2);
        out.write(4);
        out.flush();
        assertEquals(3, sink.size());
        assertFalse(pipe.broke());

        OutputStream gone = pipe.watch(failing());
        assertThrows(IOException.class, () -> gone.write(new byte[] {1}, 0, 1), "the failure still reaches the writer");
        assertTrue(pipe.broke());
    }

    @Test
    void aVmStillRunningAfterTheGraceIsKilled() throws Exception {
        BrokenPipe pipe = new BrokenPipe(Duration.ofMillis(50));
        CountDownLatch kill = new CountDownLatch(1);
        pipe.endsAfterGrace(() -> true, kill::countDown);
        Thread.sleep(200);
        assertEquals(1, kill.getCount(), "nothing happens while the streams work");

        assertThrows(IOException.class, () -> pipe.watch(failing()).write(7));
        assertTrue(kill.await(10, TimeUnit.SECONDS));
        assertTrue(pipe.killed());
    }

    @Test
    void aVmThatEndedWithinTheGraceIsLeftAlone() throws Exception {
        BrokenPipe pipe = new BrokenPipe(Duration.ofMillis(50));
        AtomicBoolean killedIt = new AtomicBoolean();
        CountDownLatch asked = new CountDownLatch(1);
        pipe.endsAfterGrace(() -> {
            asked.countDown();
            return false;
        }, () -> killedIt.set(true));
        assertThrows(IOException.class, () -> pipe.watch(failing()).write(1));
        assertTrue(asked.await(10, TimeUnit.SECONDS));
        Thread.sleep(100);
        assertFalse(killedIt.get());
        assertFalse(pipe.killed());
    }
}
