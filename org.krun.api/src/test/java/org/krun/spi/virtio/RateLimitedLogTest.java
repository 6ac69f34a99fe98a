package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;

import org.junit.jupiter.api.Test;

class RateLimitedLogTest {

    @Test
    void firstMessagePassesAndTheRestOfTheIntervalIsCounted() {
        List<String> out = new ArrayList<>();
        RateLimitedLog log = new RateLimitedLog(out::add, Duration.ofHours(1));
        log.warn("a");
        log.warn("b");
        log.warn("c");
        assertEquals(List.of("a"), out);
        assertEquals(2, log.suppressed());
    }

    @Test
    void theNextMessageAfterTheIntervalCarriesTheSuppressedCount() throws InterruptedException {
        List<String> out = new ArrayList<>();
        RateLimitedLog log = new RateLimitedLog(out::add, Duration.ofMillis(50));
        log.warn("first");
        log.warn("held");
        boolean held = out.size() == 1; // unless this thread slept past the interval in between
        Thread.sleep(120);
        log.warn("later");
        assertEquals(held ? "later (1 similar messages suppressed)" : "later", out.get(out.size() - 1));
        assertEquals(0, log.suppressed());
    }
}
