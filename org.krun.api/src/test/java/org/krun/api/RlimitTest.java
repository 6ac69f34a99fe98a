package org.krun.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import org.junit.jupiter.api.Test;

class RlimitTest {

    @Test
    void parsesSoftAndHard() {
        assertEquals(new Rlimit("NOFILE", 1024, 4096), Rlimit.parse("NOFILE=1024:4096"));
    }

    @Test
    void singleValueSetsBothLimits() {
        assertEquals(new Rlimit("NPROC", 100, 100), Rlimit.parse("NPROC=100"));
    }

    @Test
    void resourceNamesAreCaseInsensitive() {
        assertEquals("NOFILE", Rlimit.parse("nofile=1").resource());
    }

    @Test
    void unlimitedAndMinusOneMeanNoLimit() {
        assertEquals(new Rlimit("CORE", -1, -1), Rlimit.parse("CORE=unlimited"));
        assertEquals(new Rlimit("CORE", -1, -1), Rlimit.parse("CORE=-1:-1"));
        assertEquals(new Rlimit("STACK", 8192, -1), Rlimit.parse("STACK=8192:unlimited"));
    }

    @Test
    void malformedTextIsRefused() {
        for (String bad : new String[] {"NOFILE", "=1", "NOFILE=", "NOFILE=abc", "NOFILE=-5", "NOFILE=1:2:3",
                "NOFILE=1:", "BOGUS=1", "NOFILE=10:5", "NOFILE=unlimited:10", "NOFILE=99999999999999999999"}) {
            assertThrows(IllegalArgumentException.class, () -> Rlimit.parse(bad), bad);
        }
    }
}
