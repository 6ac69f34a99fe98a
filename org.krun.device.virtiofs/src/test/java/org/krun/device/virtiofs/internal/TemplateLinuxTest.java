package org.krun.device.virtiofs.internal;

import static java.nio.charset.StandardCharsets.UTF_8;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmExit;
import org.krun.vmm.internal.KrunService;
import org.krun.vmm.internal.template.TemplateCache;
import org.krun.vmm.testing.LinuxGuest;

/**
 * Templates for a VM with its root on virtio-fs (docs/templates.md): the first run boots, is snapshotted into
 * the cache at the init's template point (before the root is mounted: virtio-fs idle) and runs its command;
 * the second run restores that template and runs another command, with its own output, exit status, random
 * bytes, boot id and clock. One boot.
 */
class TemplateLinuxTest {
    private static final Pattern FACTS = Pattern.compile("uptime=(\\d+)\\.\\d+ boot_id=(\\S+) random=(\\S+) epoch=(\\d+)");

    private static final long SNAPSHOT_AGE_MILLIS = 6_000;

    @TempDir
    Path tmp;

    private static String script(String word, int status) {
        // the uptime first, with shell builtins: it is read as the command starts, before any program runs
        return "read up idle < /proc/uptime; echo " + word + " $((6*7)); echo uptime=$up boot_id=$(cat /proc/sys/kernel/random/boot_id)"
                + " random=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n') epoch=$(date +%s); exit " + status;
    }

    private static Matcher facts(String out) {
        Matcher m = FACTS.matcher(out);
        assertTrue(m.find(), out);
        return m;
    }

    @Test
    void aRestoredTemplateRunsItsOwnCommandWithItsOwnStatusRandomAndClock() throws Exception {
        LinuxGuest.assumeKvm();
        Path cache = tmp.resolve("templates");
        KrunService krun = LinuxGuest.krun(new FsFactory());

        long t0 = System.nanoTime();
        LinuxGuest.Result first = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", script("first", 3))
                .ephemeralRoot(true).templateCache(cache));
        long coldNanos = System.nanoTime() - t0;
        String firstOut = new String(first.stdout(), UTF_8);
        assertEquals(VmExit.commandExited(3), first.exit(), () -> firstOut + new String(first.stderr(), UTF_8));
        assertTrue(firstOut.contains("first 42\n"), firstOut);
        TemplateCache templates = new TemplateCache(cache, TemplateCache.DEFAULT_MAX_TEMPLATES);
        assertEquals(1, templates.keys().size(), "one template made: " + templates.keys());

        // Time passes between the template's snapshot and its restore: the restored guest must not count it.
        Thread.sleep(SNAPSHOT_AGE_MILLIS);
        long t1 = System.nanoTime();
        LinuxGuest.Result second = LinuxGuest.run(krun, LinuxGuest.config("/bin/sh", "-c", script("second", 5))
                .ephemeralRoot(true).templateCache(cache));
        long restoredNanos = System.nanoTime() - t1;
        String secondOut = new String(second.stdout(), UTF_8);
        assertEquals(VmExit.commandExited(5), second.exit(), () -> secondOut + new String(second.stderr(), UTF_8));
        assertTrue(secondOut.contains("second 42\n"), secondOut);
        assertTrue(!secondOut.contains("first"), secondOut);
        assertEquals(1, templates.keys().size(), "the template was reused, not made again: " + templates.keys());

        Matcher a = facts(firstOut);
        Matcher b = facts(secondOut);
        assertNotEquals(a.group(2), b.group(2), "boot ids");
        assertNotEquals(a.group(3), b.group(3), "random bytes");
        // Both commands start a similar time after the snapshot's moment (the first: resumed after it; the
        // second: restored from it), so their guests' uptimes are close; a guest clock that counted the
        // time the template lay in the cache (a TSC clocksource: its kernel then catches the gap up one
        // second at a time) is ahead by at least SNAPSHOT_AGE_MILLIS.
        long firstUptime = Long.parseLong(a.group(1));
        long secondUptime = Long.parseLong(b.group(1));
        assertTrue(secondUptime - firstUptime < SNAPSHOT_AGE_MILLIS / 1000 - 1,
                () -> "the restored guest's uptime is " + secondUptime + " s, the first run's " + firstUptime
                        + " s: it counted the " + SNAPSHOT_AGE_MILLIS / 1000 + " s between snapshot and restore");
        long hostEpoch = System.currentTimeMillis() / 1000;
        long guestEpoch = Long.parseLong(b.group(4));
        assertTrue(Math.abs(hostEpoch - guestEpoch) <= (restoredNanos / 1_000_000_000L) + 2,
                () -> "restored guest's clock " + guestEpoch + " vs host " + hostEpoch);
        System.out.printf("TemplateLinuxTest figures: boot + template + command %.1f s; restore + command %.1f s; "
                + "first: %s; second: %s%n", coldNanos / 1e9, restoredNanos / 1e9, firstOut.trim().replace('\n', ' '),
                secondOut.trim().replace('\n', ' '));
    }
}
