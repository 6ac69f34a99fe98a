package org.krun.device.balloon.internal;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * The resident size of a VM's guest RAM as the host sees it, read from this process's
 * {@code /proc/self/smaps}: the VM runs in-process, and its RAM is one anonymous mapping of exactly the
 * VM's memory size marked MADV_DONTFORK (VmFlags {@code dc}), which nothing else in a JVM is.
 */
final class GuestRamRss {

    private GuestRamRss() {
    }

    /** One mapping of smaps: its size, resident size and flags. */
    record Mapping(String range, long sizeKib, long rssKib, List<String> flags) {
    }

    static List<Mapping> mappings() {
        List<String> lines;
        try {
            lines = Files.readAllLines(Path.of("/proc/self/smaps"));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        List<Mapping> out = new ArrayList<>();
        String range = null;
        long size = -1;
        long rss = -1;
        for (String line : lines) {
            if (line.matches("^[0-9a-f]+-[0-9a-f]+ .*")) {
                range = line.substring(0, line.indexOf(' '));
                size = -1;
                rss = -1;
            } else if (line.startsWith("Size:")) {
                size = kib(line);
            } else if (line.startsWith("Rss:")) {
                rss = kib(line);
            } else if (line.startsWith("VmFlags:") && range != null) {
                out.add(new Mapping(range, size, rss, List.of(line.substring("VmFlags:".length()).trim().split("\\s+"))));
                range = null;
            }
        }
        return out;
    }

    private static long kib(String line) {
        String[] f = line.trim().split("\\s+");
        return Long.parseLong(f[1]);
    }

    /** Resident KiB of the one guest RAM mapping of {@code memoryMib}; fails if there is not exactly one. */
    static long residentKib(int memoryMib) {
        List<Mapping> ram = mappings().stream()
                .filter(m -> m.sizeKib() == memoryMib * 1024L && m.flags().contains("dc"))
                .toList();
        if (ram.size() != 1) {
            throw new AssertionError("expected one guest RAM mapping of " + memoryMib + " MiB, found " + ram);
        }
        return ram.get(0).rssKib();
    }

    /** This process's VmRSS in KiB (everything: JVM, heap, guest RAM). */
    static long processRssKib() {
        try {
            for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
                if (line.startsWith("VmRSS:")) {
                    return kib(line);
                }
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        throw new AssertionError("no VmRSS in /proc/self/status");
    }
}
