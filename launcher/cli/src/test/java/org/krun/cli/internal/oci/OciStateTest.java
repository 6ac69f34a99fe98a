package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.cli.internal.oci.OciCommand.Signals;
import org.krun.cli.internal.oci.OciSpec.OciException;
import org.krun.cli.internal.oci.OciState.State;

/** The state directory, the state JSON the spec's {@code state} prints, signals and cgroup paths (no VM). */
class OciStateTest {

    @TempDir
    Path root;

    private static State state(String status, long pid, long start) {
        return new State("c1", status, pid, start, "/b", Map.of("a", "1"), "2026-01-01T00:00:00Z", -1);
    }

    @Test
    void theSpecsStateJson() {
        long me = ProcessHandle.current().pid();
        Map<String, Object> m = OciState.toJson(state(OciState.RUNNING, me, 5), false);
        assertEquals(List.of("ociVersion", "id", "status", "pid", "bundle", "created", "annotations"), List.copyOf(m.keySet()));
        assertEquals("{\"ociVersion\":\"1.0.2\",\"id\":\"c1\",\"status\":\"running\",\"pid\":" + me
                + ",\"bundle\":\"/b\",\"created\":\"2026-01-01T00:00:00Z\",\"annotations\":{\"a\":\"1\"}}", OciJson.write(m));
        assertEquals(0L, OciState.toJson(state(OciState.STOPPED, me, 5), false).get("pid"), "a stopped container has no pid");
    }

    @Test
    void statesLiveThroughTheirTransitionsAndDeleteLeavesNothing() {
        OciState st = new OciState(root, "c1");
        assertFalse(st.exists());
        assertThrows(OciException.class, st::read);
        st.create(state(OciState.CREATING, 0, 0));
        assertTrue(st.exists());
        assertTrue(assertThrows(OciException.class, () -> st.create(state(OciState.CREATING, 0, 0))).getMessage()
                .contains("already exists"));
        assertEquals(OciState.CREATING, st.current().status());
        long me = ProcessHandle.current().pid();
        long start = OciState.startTime(me);
        assertTrue(start > 0);
        st.write(state(OciState.CREATED, me, start));
        assertEquals(OciState.CREATED, st.current().status());
        st.write(state(OciState.RUNNING, me, start));
        assertEquals(OciState.RUNNING, st.current().status());
        st.write(state(OciState.RUNNING, me, start).withExit(3));
        State done = st.current();
        assertEquals(OciState.STOPPED, done.status());
        assertEquals(3, done.exitStatus());
        st.delete();
        assertFalse(Files.exists(root.resolve("c1")));
    }

    @Test
    void aRunningContainerWhoseProcessIsGoneIsStopped() throws Exception {
        OciState st = new OciState(root, "c2");
        Process p = new ProcessBuilder("sleep", "60").start();
        long start = OciState.startTime(p.pid());
        st.create(state(OciState.RUNNING, p.pid(), start));
        assertEquals(OciState.RUNNING, st.current().status());
        p.destroyForcibly().waitFor(); // as kill -9 of the VMM process would
        assertEquals(OciState.STOPPED, st.current().status());
        // another process that got the same pid later is not the container's: its start time differs
        long me = ProcessHandle.current().pid();
        st.write(state(OciState.RUNNING, me, OciState.startTime(me) + 1));
        assertEquals(OciState.STOPPED, st.current().status());
    }

    @Test
    void theControlSocketWorksUnderALongRootAndAnEnginesLongId() throws Exception {
        Path deep = Files.createDirectories(root.resolve("a".repeat(60)).resolve("b".repeat(60)));
        OciState st = new OciState(deep, "7b6471d45c9424b16096a817f47d9d98c4a62c46c4ac3bf4d7f154f9207f09ac");
        st.create(state(OciState.CREATED, 0, 0));
        assertTrue(st.socket().toString().length() > OciState.MAX_SOCKET_PATH);
        try (var server = java.nio.channels.ServerSocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
            st.withSocketPath(p -> server.bind(java.net.UnixDomainSocketAddress.of(p)));
            assertTrue(Files.exists(st.socket()), "the socket is in the state directory");
            try (var client = java.nio.channels.SocketChannel.open(java.net.StandardProtocolFamily.UNIX)) {
                assertTrue((boolean) st.withSocketPath(p -> client.connect(java.net.UnixDomainSocketAddress.of(p))));
                try (var accepted = server.accept()) {
                    client.write(java.nio.ByteBuffer.wrap(new byte[] {42}));
                    java.nio.ByteBuffer b = java.nio.ByteBuffer.allocate(1);
                    accepted.read(b);
                    assertEquals(42, b.get(0));
                }
            }
        }
        st.delete();
        assertFalse(Files.exists(st.dir()));
    }

    @Test
    void aReadOnlyRootGetsItsMountPointsMadeInsideIt() throws Exception {
        Path rootfs = Files.createDirectories(root.resolve("rootfs"));
        Path outside = Files.createDirectories(root.resolve("outside"));
        Files.createSymbolicLink(rootfs.resolve("link"), outside);
        Path share = Files.createDirectories(root.resolve("share"));
        OciSpec spec = OciSpec.from(OciJson.parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"" + rootfs
                + "\",\"readonly\":true},\"mounts\":[{\"destination\":\"/data/deep\",\"type\":\"bind\",\"source\":\"" + share
                + "\"},{\"destination\":\"/link/x\",\"type\":\"bind\",\"source\":\"" + share
                + "\"},{\"destination\":\"/scratch\",\"type\":\"tmpfs\",\"source\":\"tmpfs\"}]}"), root);
        OciCommand.makeMountPoints(spec);
        assertTrue(Files.isDirectory(rootfs.resolve("data/deep")));
        assertTrue(Files.isDirectory(rootfs.resolve("scratch")));
        assertFalse(Files.exists(outside.resolve("x")), "never through a symlink");
    }

    @Test
    void idsAreOnePathComponent() {
        for (String bad : new String[] {"", ".", "..", "a/b", "../x", "-x", "a b"}) {
            assertThrows(OciException.class, () -> new OciState(root, bad), bad);
        }
        new OciState(root, "7b6471d45c9424b16096a817f47d9d98c4a62c46c4ac3bf4d7f154f9207f09ac");
    }

    @Test
    void signalsByNameAndNumber() {
        assertEquals(15, Signals.parse("TERM"));
        assertEquals(15, Signals.parse("SIGTERM"));
        assertEquals(15, Signals.parse("15"));
        assertEquals(9, Signals.parse("KILL"));
        assertEquals(2, Signals.parse("sigint"));
        assertEquals(34, Signals.parse("RTMIN"));
        assertEquals(36, Signals.parse("SIGRTMIN+2"));
        assertEquals(64, Signals.parse("RTMAX"));
        for (String bad : new String[] {"", "0", "65", "BOGUS", "RTMIN+40"}) {
            assertThrows(OciException.class, () -> Signals.parse(bad), bad);
        }
    }

    @Test
    void cgroupDirectoriesOfAHybridHost() {
        List<String> hybrid = List.of("9:name=systemd:/", "4:memory:/x", "2:cpu,cpuacct:/", "0::/");
        Path mount = root.resolve("cg");
        assertEquals(List.of(mount.resolve("systemd/libpod_parent/c"), mount.resolve("memory/libpod_parent/c"),
                mount.resolve("cpu,cpuacct/libpod_parent/c")), Cgroups.directories(hybrid, mount, "/libpod_parent/c"));
        assertEquals(List.of(mount.resolve("libpod_parent/c")), Cgroups.directories(List.of("0::/user.slice"), mount, "/libpod_parent/c"));
        assertTrue(Cgroups.join("machine.slice:libpod:c", 1).orElseThrow().contains("systemd"));
    }

    @Test
    void theVmmIsThisJvmsLauncherCommand() {
        List<String> p = OciCommand.launcherPrefix(List.of("/usr/bin/java", "-Dkrun.kernel=/k", "-jar", "/x/krun-launcher.jar",
                "oci", "create", "c"));
        assertEquals(4, p.size());
        assertEquals(List.of("-Dkrun.kernel=/k", "-jar", "/x/krun-launcher.jar"), p.subList(1, 4));
        assertThrows(OciException.class, () -> OciCommand.launcherPrefix(List.of("java", "Main")));
    }

    @Test
    void theStateFileReadsBackAsWrittenAndAsTheSpecsStateForOthers() throws Exception {
        OciState st = new OciState(root, "c3");
        long me = ProcessHandle.current().pid();
        State s = new State("c3", OciState.RUNNING, me, OciState.startTime(me), "/b/\"q\" é",
                Map.of("io.podman.annotations.label", "a=b,c=\"d\"", "emoji", "\uD83D\uDE00"), "2026-01-01T00:00:00.5Z", -1);
        st.create(s);
        assertEquals(s, st.read());
        // what another tool (podman, a script with jq) reads: the spec's members, of the spec's types
        Map<?, ?> file = (Map<?, ?>) OciJson.parse(Files.readString(st.dir().resolve("state.json")));
        assertEquals("1.0.2", file.get("ociVersion"));
        assertEquals("c3", file.get("id"));
        assertEquals("running", file.get("status"));
        assertEquals(me, file.get("pid"));
        assertEquals("/b/\"q\" é", file.get("bundle"));
        assertEquals(s.annotations(), file.get("annotations"));
        st.write(s.withExit(137));
        assertEquals(137, st.read().exitStatus());
        Files.writeString(st.dir().resolve("state.json"), "{\"id\":\"c3\",");
        OciException e = assertThrows(OciException.class, st::read);
        assertTrue(e.getMessage().startsWith("state.json is damaged: "), e.getMessage());
        assertFalse(e.getMessage().contains("\n"), e.getMessage());
        Files.writeString(st.dir().resolve("state.json"), "[1]");
        assertEquals("state.json is damaged: not an object", assertThrows(OciException.class, st::read).getMessage());
    }
}
