package org.krun.spi.virtio;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class FuzzScratchTest {

    @TempDir
    Path parent;

    @Test
    void foldersOfEndedProcessesGoAndThoseOfLiveOnesStay() throws Exception {
        Process ended = new ProcessBuilder("true").start();
        ended.waitFor();
        long gone = ended.pid();
        Path stale = Files.createDirectories(parent.resolve("krun-x-fuzz-" + gone + "-123/sub"));
        Files.writeString(stale.resolve("f"), "left by a fuzzing run");
        Files.setPosixFilePermissions(stale, PosixFilePermissions.fromString("r-x------")); // as a guest may leave it
        Path live = Files.createDirectory(parent.resolve("krun-x-fuzz-" + ProcessHandle.current().pid() + "-456"));
        Path other = Files.createDirectory(parent.resolve("krun-y-fuzz-" + gone + "-789"));
        Path unrelated = Files.createDirectory(parent.resolve("krun-x-fuzz-notapid-1"));

        Path made = FuzzScratch.folder(parent, "krun-x-fuzz");

        assertFalse(Files.exists(stale.getParent()), "the folder of a process that ended is removed");
        assertTrue(Files.isDirectory(live), "the folder of a live process stays");
        assertTrue(Files.isDirectory(other) && Files.isDirectory(unrelated), "other names stay");
        assertTrue(Files.isDirectory(made));
        assertTrue(made.getFileName().toString().startsWith("krun-x-fuzz-" + ProcessHandle.current().pid() + "-"), made.toString());
    }
}
