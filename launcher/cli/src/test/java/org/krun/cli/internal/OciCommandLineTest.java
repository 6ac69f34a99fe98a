package org.krun.cli.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;

import com.google.gson.JsonObject;
import com.google.gson.JsonParser;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.Krun;
import org.krun.api.VirtualMachine;
import org.krun.api.VmConfig;

/** {@code krun oci} as a container engine calls it, where no VM is needed: its JSON read back by another parser. */
class OciCommandLineTest {

    @TempDir
    Path tmp;

    private record Result(int status, String out, String err) {
    }

    private static Result krun(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
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
        int status = KrunCli.execute(noVms, args, new PrintWriter(out), new PrintWriter(err));
        return new Result(status, out.toString(), err.toString());
    }

    @Test
    void aMalformedConfigJsonIsOneErrorLineStatusOneAndNothingLeft() throws Exception {
        Path bundle = Files.createDirectories(tmp.resolve("bundle"));
        Files.writeString(bundle.resolve("config.json"), "{\"process\":{\"args\":[\"true\"],},\"root\":{\"path\":\"rootfs\"}}");
        Path state = tmp.resolve("state");
        Path log = tmp.resolve("log.json");
        Result r = krun("oci", "--root", state.toString(), "--log", log.toString(), "--log-format", "json", "create",
                "--bundle", bundle.toString(), "c1");
        assertEquals(1, r.status(), r.toString());
        assertEquals("", r.out(), r.toString());
        List<String> lines = r.err().lines().toList();
        assertEquals(1, lines.size(), r.toString());
        assertTrue(lines.get(0).startsWith("krun: " + bundle.resolve("config.json") + " is not JSON: "), r.toString());
        assertTrue(lines.get(0).contains("line 1 column"), r.toString());
        assertFalse(Files.exists(state.resolve("c1")), "no state for a container never created");
        // --log-format json: one object a line, as runc writes them and engines read them
        List<String> logged = Files.readAllLines(log);
        assertEquals(1, logged.size(), logged.toString());
        JsonObject entry = JsonParser.parseString(logged.get(0)).getAsJsonObject();
        assertEquals("error", entry.get("level").getAsString());
        assertEquals(lines.get(0).substring("krun: ".length()), entry.get("msg").getAsString());
        assertTrue(entry.has("time"));
    }

    @Test
    void featuresIsTheSpecsJson() {
        // krun oci prints its JSON on the process's standard output (an engine's pipe), not picocli's writer
        java.io.ByteArrayOutputStream bytes = new java.io.ByteArrayOutputStream();
        java.io.PrintStream saved = System.out;
        Result r;
        try {
            System.setOut(new java.io.PrintStream(bytes, true, java.nio.charset.StandardCharsets.UTF_8));
            r = krun("oci", "features");
        } finally {
            System.setOut(saved);
        }
        assertEquals(0, r.status(), r.toString());
        JsonObject f = JsonParser.parseString(bytes.toString(java.nio.charset.StandardCharsets.UTF_8)).getAsJsonObject();
        assertEquals("1.0.0", f.get("ociVersionMin").getAsString());
        assertEquals(0, f.getAsJsonArray("hooks").size());
        assertTrue(f.getAsJsonObject("linux").getAsJsonObject("cgroup").get("v2").getAsBoolean());
        assertEquals("true", f.getAsJsonObject("annotations").get("org.krun.vm").getAsString());
    }

    @Test
    void execIntoAContainerThatIsNotRunningFailsInOneLine() throws Exception {
        Path log = tmp.resolve("log.json");
        Path state = tmp.resolve("state");
        Result r = krun("oci", "--root", state.toString(), "--log", log.toString(), "--log-format", "json",
                "exec", "--process", tmp.resolve("process.json").toString(), "--detach", "--pid-file",
                tmp.resolve("pid").toString(), "c1");
        assertEquals(1, r.status(), r.toString());
        assertEquals(List.of("krun: container c1 does not exist"), r.err().lines().toList(), r.toString());
        assertTrue(Files.readString(log).contains("container c1 does not exist"), "the engine reads --log");
        Files.createDirectories(state.resolve("c2"));
        Files.writeString(state.resolve("c2/state.json"), "{\"id\":\"c2\",\"status\":\"stopped\",\"pid\":0,\"bundle\":\"/b\"}");
        r = krun("oci", "--root", state.toString(), "exec", "c2", "sh", "-c", "echo hi");
        assertEquals(1, r.status(), r.toString());
        assertEquals(List.of("krun: container c2 is stopped, not running: it cannot exec"), r.err().lines().toList(), r.toString());
        assertFalse(Files.exists(tmp.resolve("pid")), "no pid file");
    }
}
