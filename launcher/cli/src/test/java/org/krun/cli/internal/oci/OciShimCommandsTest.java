package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import com.google.gson.JsonArray;
import com.google.gson.JsonParser;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;
import org.krun.cli.internal.oci.OciState.State;

import picocli.CommandLine;

/** {@code ps}, {@code delete --force}, {@code pause} and {@code resume} as containerd's runc shim calls them, on state made by hand (no VM). */
class OciShimCommandsTest {

    @TempDir
    Path state;

    private record Result(int status, String out) {
    }

    private Result oci(String... args) {
        Krun noVms = new Krun() {
            @Override
            public VirtualMachine create(VmConfig config) {
                throw new AssertionError("a VM was asked for: " + config);
            }

            @Override
            public List<VirtualMachine> list() {
                return List.of();
            }
        };
        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        PrintStream saved = System.out;
        int status;
        try {
            System.setOut(new PrintStream(bytes, true, StandardCharsets.UTF_8));
            String[] all = new String[args.length + 2];
            all[0] = "--root";
            all[1] = state.toString();
            System.arraycopy(args, 0, all, 2, args.length);
            status = new CommandLine(new OciCommand(noVms)).execute(all);
        } finally {
            System.setOut(saved);
        }
        return new Result(status, bytes.toString(StandardCharsets.UTF_8));
    }

    /** A container whose "VMM process" is this test's JVM: alive, so running. */
    private long running(String id) {
        long pid = ProcessHandle.current().pid();
        new OciState(state, id).create(new State(id, OciState.RUNNING, pid, OciState.startTime(pid), "/b", Map.of(),
                "2026-01-01T00:00:00Z", -1));
        return pid;
    }

    @Test
    void psJsonIsTheVmmProcessWhileItRuns() {
        long pid = running("c1");
        Result r = oci("ps", "--format", "json", "c1");
        assertEquals(0, r.status(), r.toString());
        JsonArray pids = JsonParser.parseString(r.out()).getAsJsonArray();
        assertEquals(1, pids.size(), r.toString());
        assertEquals(pid, pids.get(0).getAsLong());
    }

    @Test
    void psTableIsPsLinesOfTheVmmProcess() {
        long pid = running("c1");
        Result r = oci("ps", "c1");
        assertEquals(0, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals(2, lines.size(), r.toString());
        assertTrue(lines.get(0).contains("PID"), r.toString());
        assertTrue(List.of(lines.get(1).trim().split("\\s+")).contains(Long.toString(pid)), r.toString());
    }

    @Test
    void psTableTakesPsOptionsAfterTheIdAsRuncs() {
        long pid = running("c1");
        Result r = oci("ps", "c1", "-o", "pid,comm");
        assertEquals(0, r.status(), r.toString());
        List<String> lines = r.out().lines().toList();
        assertEquals(List.of("PID", "COMMAND"), List.of(lines.get(0).trim().split("\\s+")), r.toString());
        assertEquals(2, lines.size(), r.toString());
        assertEquals(Long.toString(pid), lines.get(1).trim().split("\\s+")[0], r.toString());
    }

    @Test
    void psOfAStoppedContainerIsEmpty() {
        new OciState(state, "c2").create(new State("c2", OciState.STOPPED, 0, 0, "/b", Map.of(), "2026-01-01T00:00:00Z", 3));
        Result r = oci("ps", "--format", "json", "c2");
        assertEquals(0, r.status(), r.toString());
        assertEquals(0, JsonParser.parseString(r.out()).getAsJsonArray().size(), r.toString());
    }

    @Test
    void deleteForceOfAContainerThatIsNotThereSucceedsAsRuncs() {
        assertEquals(0, oci("delete", "--force", "gone").status());
        assertNotEquals(0, oci("delete", "gone").status());
    }

    @Test
    void pauseAndResumeAnswerOnlyInTheirStates() {
        new OciState(state, "c3").create(new State("c3", OciState.CREATED, ProcessHandle.current().pid(),
                OciState.startTime(ProcessHandle.current().pid()), "/b", Map.of(), "2026-01-01T00:00:00Z", -1));
        assertEquals(1, oci("pause", "c3").status(), "a created container cannot pause");
        assertEquals(1, oci("resume", "c3").status(), "nor resume");
        running("c4");
        assertEquals(1, oci("resume", "c4").status(), "a running container is not paused");
        assertEquals(1, oci("delete", "c4").status(), "a running container needs --force");
        assertTrue(new OciState(state, "c4").exists());
    }
}
