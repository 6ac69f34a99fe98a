package org.krun.device.blk.internal;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;

/** blkcheck, the guest test program, as built into the test classes; also runnable on the host. */
final class HostBlkcheck {

    private HostBlkcheck() {
    }

    static Path binary() {
        try {
            Path p = Path.of(HostBlkcheck.class.getResource("/guest/blkcheck").toURI());
            if (!Files.isExecutable(p)) {
                throw new AssertionError(p + " is not executable");
            }
            return p;
        } catch (java.net.URISyntaxException | NullPointerException e) {
            throw new AssertionError("blkcheck was not built (src/test/guest, needs musl-gcc)", e);
        }
    }

    /** blkcheck's key=value output as a map (the last value of a key wins). */
    static Map<String, String> parse(String output) {
        Map<String, String> m = new LinkedHashMap<>();
        output.lines().filter(l -> l.indexOf('=') > 0).forEach(l -> m.put(l.substring(0, l.indexOf('=')),
                l.substring(l.indexOf('=') + 1)));
        return m;
    }

    /** The hash blkcheck computes for pattern {@code seed} over {@code length} bytes, run on the host. */
    static String patternHash(long seed, int length) throws Exception {
        String out = HostFiles.ok(binary().toString(), "patternhash:" + seed + ":" + length);
        return parse(out).get("patternhash");
    }
}
