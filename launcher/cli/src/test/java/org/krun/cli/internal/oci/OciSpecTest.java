package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.ConsoleSpec;
import org.krun.api.FsShareSpec;
import org.krun.api.GuestMount;
import org.krun.api.GuestUser;
import org.krun.api.Rlimit;
import org.krun.api.VmConfig;
import org.krun.cli.internal.oci.OciSpec.OciException;

/** How an OCI bundle's config.json becomes a krun VM (no VM is made). */
class OciSpecTest {

    @TempDir
    Path bundle;

    /** A config.json as podman 4.3 writes it for {@code run -v HOST:/data IMAGE sh -c ...}, abridged. */
    private String podmanConfig(Path share, Path file) {
        return """
            {"ociVersion":"1.0.2-dev",
             "process":{"user":{"uid":1000,"gid":100,"additionalGids":[10,20],"umask":18},
               "args":["sh","-c","echo hi; exit 3"],
               "env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin","TERM=xterm","container=podman","HOSTNAME=7b6471d45c94"],
               "cwd":"/work","capabilities":{"bounding":["CAP_CHOWN"]},
               "rlimits":[{"type":"RLIMIT_NOFILE","hard":1048576,"soft":1048576},
                          {"type":"RLIMIT_NPROC","hard":32768,"soft":32768},
                          {"type":"RLIMIT_CORE","hard":18446744073709551615,"soft":18446744073709551615}]},
             "root":{"path":"rootfs"},
             "hostname":"7b6471d45c94",
             "mounts":[
               {"destination":"/proc","type":"proc","source":"proc","options":["nosuid","noexec","nodev"]},
               {"destination":"/dev","type":"tmpfs","source":"tmpfs","options":["nosuid","strictatime","mode=755","size=65536k"]},
               {"destination":"/sys","type":"sysfs","source":"sysfs","options":["nosuid","noexec","nodev","ro"]},
               {"destination":"/dev/pts","type":"devpts","source":"devpts","options":["nosuid","noexec","newinstance"]},
               {"destination":"/dev/mqueue","type":"mqueue","source":"mqueue","options":["nosuid","noexec","nodev"]},
               {"destination":"/dev/shm","type":"bind","source":"%1$s","options":["bind","rprivate","nosuid"]},
               {"destination":"/etc/resolv.conf","type":"bind","source":"%2$s","options":["bind","rprivate"]},
               {"destination":"/etc/hosts","type":"bind","source":"%2$s","options":["bind","rprivate"]},
               {"destination":"/sys/fs/cgroup","type":"cgroup","source":"cgroup","options":["ro"]},
               {"destination":"/data","type":"bind","source":"%1$s","options":["rbind","rprivate"]},
               {"destination":"/ro/","type":"bind","source":"%1$s","options":["rbind","ro"]},
               {"destination":"/scratch","type":"tmpfs","source":"tmpfs","options":["rw","nosuid","size=16m","mode=1777"]}],
             "annotations":{"io.container.manager":"libpod","krun.cpus":"2","krun.ram_mib":"768"},
             "linux":{"resources":{"pids":{"limit":2048}},
               "cgroupsPath":"/libpod_parent/libpod-7b64",
               "namespaces":[{"type":"pid"},{"type":"network","path":"/run/netns/netns-1"},{"type":"ipc"},{"type":"uts"},{"type":"mount"}]}}
            """.formatted(share, file);
    }

    private OciSpec podman() throws IOException {
        Path share = Files.createDirectories(bundle.resolve("share"));
        Path file = Files.writeString(bundle.resolve("resolv.conf"), "nameserver 10.0.0.1\n");
        return OciSpec.from(OciJson.parse(podmanConfig(share, file)), bundle);
    }

    @Test
    void processBecomesTheCommandItsEnvironmentUserAndLimits() throws IOException {
        OciSpec s = podman();
        assertEquals(List.of("sh", "-c", "echo hi; exit 3"), s.args());
        assertEquals("xterm", s.env().get("TERM"));
        assertEquals("podman", s.env().get("container"));
        assertEquals("/work", s.cwd());
        assertEquals(new GuestUser(1000, 100, List.of(10L, 20L)), s.user());
        assertFalse(s.terminal());
        assertEquals(List.of(new Rlimit("NOFILE", 1048576, 1048576), new Rlimit("NPROC", 32768, 32768),
                new Rlimit("CORE", -1, -1)), s.rlimits());
    }

    @Test
    void rootMountsHostnameSizeAndNamespaces() throws IOException {
        OciSpec s = podman();
        assertEquals(bundle.resolve("rootfs"), s.root());
        assertFalse(s.rootReadOnly());
        Path share = bundle.resolve("share");
        // /dev/shm is the guest's own; /etc/resolv.conf and /etc/hosts are files the guest has from TSI
        assertEquals(List.of(new OciSpec.Share(share, "/data", false), new OciSpec.Share(share, "/ro", true)), s.shares());
        assertEquals(List.of(new GuestMount("tmpfs", "/scratch", "tmpfs", "size=16m,mode=1777")), s.mounts());
        assertEquals("7b6471d45c94", s.hostname());
        assertEquals(2, s.cpus());
        assertEquals(768, s.memoryMib());
        assertEquals(Path.of("/run/netns/netns-1"), s.netns());
        assertFalse(s.newNetns());
        assertEquals("/libpod_parent/libpod-7b64", s.cgroupsPath());
        assertEquals("libpod", s.annotations().get("io.container.manager"));
        assertTrue(s.notes().isEmpty(), "podman's usual mounts all have their guest counterpart: " + s.notes());
    }

    @Test
    void theVmConfigHasItAll() throws IOException {
        OciSpec s = podman();
        VmConfig c = s.apply(VmConfig.builder()).kernel(Path.of("/k")).console(ConsoleSpec.discard()).build();
        assertEquals(2, c.cpus());
        assertEquals(768, c.memoryMib());
        assertEquals(List.of("sh", "-c", "echo hi; exit 3"), c.command());
        assertEquals("/work", c.workdir());
        assertEquals("7b6471d45c94", c.hostname());
        assertEquals(s.user(), c.user().orElseThrow());
        assertEquals(s.rlimits(), c.rlimits());
        assertEquals(bundle.resolve("rootfs"), c.root().orElseThrow());
        assertFalse(c.ephemeralRoot());
        assertTrue(c.rootMount().isEmpty(), "a writable root is shared as krun run --root shares it");
        Path share = bundle.resolve("share");
        assertEquals(List.of(new FsShareSpec("krun-oci0", share, false), new FsShareSpec("krun-oci1", share, true)), c.devices());
        assertEquals(List.of(new GuestMount("krun-oci0", "/data", "virtiofs", ""), new GuestMount("krun-oci1", "/ro", "virtiofs", "ro"),
                new GuestMount("tmpfs", "/scratch", "tmpfs", "size=16m,mode=1777")), c.mounts());
    }

    private OciSpec parse(String json) {
        return OciSpec.from(OciJson.parse(json), bundle);
    }

    @Test
    void aReadOnlyRootIsAReadOnlyShareMountedReadOnly() {
        OciSpec s = parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\",\"readonly\":true}}");
        assertTrue(s.rootReadOnly());
        VmConfig c = s.apply(VmConfig.builder()).kernel(Path.of("/k")).build();
        assertEquals(new GuestMount(FsShareSpec.ROOT_TAG, "/", "virtiofs", "ro"), c.rootMount().orElseThrow());
        assertEquals(List.of(new FsShareSpec(FsShareSpec.ROOT_TAG, Path.of("/r"), true)), c.devices());
    }

    @Test
    void defaultsWithoutAnnotationsAndTheMemoryLimitAsSize() {
        OciSpec s = parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"}}");
        assertEquals(OciSpec.DEFAULT_CPUS, s.cpus());
        assertEquals(OciSpec.DEFAULT_MEMORY_MIB, s.memoryMib());
        assertEquals("/", s.cwd());
        assertNull(s.user());
        assertNull(s.hostname());
        assertNull(s.netns());
        assertFalse(s.newNetns(), "no network entry: the engine's network");
        OciSpec own = parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},"
                + "\"linux\":{\"namespaces\":[{\"type\":\"network\"},{\"type\":\"pid\"}]}}");
        assertNull(own.netns());
        assertTrue(own.newNetns(), "a network entry without path: a namespace of its own (containerd's default)");
        OciSpec limited = parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},"
                + "\"linux\":{\"resources\":{\"memory\":{\"limit\":268435456}}}}");
        assertEquals(256, limited.memoryMib());
    }

    @Test
    void whatAVmCannotHonourFailsInOneLine() throws IOException {
        Files.writeString(bundle.resolve("file"), "x");
        Map<String, String> bad = Map.of(
                "{\"root\":{\"path\":\"/r\"}}", "no process",
                "{\"process\":{\"args\":[]},\"root\":{\"path\":\"/r\"}}", "process.args is empty",
                "{\"process\":{\"args\":[\"true\"]}}", "no root.path",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"linux\":{\"namespaces\":[{\"type\":\"user\"}]}}",
                "user namespace",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"hooks\":{\"prestart\":[{\"path\":\"/bin/true\"}]}}",
                "hooks",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"mounts\":[{\"destination\":\"/x\",\"type\":\"nfs\",\"source\":\"h:/x\"}]}",
                "mount type 'nfs'",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"mounts\":[{\"destination\":\"/x\",\"type\":\"bind\",\"source\":\"/no/such/dir\"}]}",
                "does not exist",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"annotations\":{\"krun.cpus\":\"0\"}}", "krun.cpus=0",
                "{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"annotations\":{\"krun.ram_mib\":\"64\"}}", "krun.ram_mib=64",
                "{\"process\":{\"args\":[\"true\"],\"rlimits\":[{\"type\":\"RLIMIT_BOGUS\",\"soft\":1,\"hard\":1}]},\"root\":{\"path\":\"/r\"}}",
                "BOGUS");
        bad.forEach((json, message) -> {
            OciException e = assertThrows(OciException.class, () -> parse(json), json);
            assertTrue(e.getMessage().contains(message), e.getMessage() + " lacks " + message);
            assertFalse(e.getMessage().contains("\n"), e.getMessage());
        });
    }

    @Test
    void aBoundFileIsLeftOutWithANote() throws IOException {
        Path file = Files.writeString(bundle.resolve("file"), "x");
        OciSpec s = parse("{\"process\":{\"args\":[\"true\"]},\"root\":{\"path\":\"/r\"},\"mounts\":[{\"destination\":\"/etc/app.conf\","
                + "\"type\":\"bind\",\"source\":\"" + file + "\",\"options\":[\"bind\"]}]}");
        assertTrue(s.shares().isEmpty());
        assertEquals(1, s.notes().size());
        assertTrue(s.notes().get(0).contains("/etc/app.conf"), s.notes().toString());
    }

    @Test
    void loadReadsTheBundlesConfig() throws IOException {
        Files.writeString(bundle.resolve("config.json"), "{\"process\":{\"args\":[\"/bin/echo\",\"x\"]},\"root\":{\"path\":\"rootfs\",\"readonly\":false}}");
        OciSpec s = OciSpec.load(bundle);
        assertEquals(List.of("/bin/echo", "x"), s.args());
        assertEquals(bundle.resolve("rootfs"), s.root());
        assertThrows(OciException.class, () -> OciSpec.load(bundle.resolve("missing")));
        Files.writeString(bundle.resolve("config.json"), "{not json");
        assertTrue(assertThrows(OciException.class, () -> OciSpec.load(bundle)).getMessage().contains("not JSON"));
    }

    @Test
    void aMalformedConfigIsOneLineNamingTheFileAndWhere() throws IOException {
        Path config = bundle.resolve("config.json");
        for (String text : new String[] {"", "{\"process\":{\"args\":[\"true\"],}}", "{\"process\":{\"args\":[\"true\"]}} {}",
            "{\"process\":{\"args\":['true']}}", "{\"process\":{\"args\":[\"true\"]},\n \"root\":{\"path\":\"r\"}"}) {
            Files.writeString(config, text);
            String m = assertThrows(OciException.class, () -> OciSpec.load(bundle), text).getMessage();
            assertTrue(m.startsWith(config + " is not JSON: "), m);
            assertTrue(text.isEmpty() || m.contains(" at line "), "says where: " + m);
            assertFalse(m.contains("\n"), m);
        }
    }

    @Test
    void unknownMembersAnywhereAreIgnored() throws IOException {
        Files.writeString(bundle.resolve("config.json"), """
                {"ociVersion":"1.2.0","futureTopLevel":{"deep":[1,{"x":null}]},"vm":{"hypervisor":{"path":"/x"}},
                 "process":{"args":["true"],"ioPriority":{"class":"IOPRIO_CLASS_IDLE"},"scheduler":{"policy":"SCHED_OTHER"},
                   "user":{"uid":5,"gid":6,"umask":18,"newField":true},"apparmorProfile":"x","noNewPrivileges":true},
                 "root":{"path":"rootfs","newField":[]},
                 "mounts":[{"destination":"/scratch","type":"tmpfs","source":"tmpfs","uidMappings":[],"extra":1}],
                 "linux":{"namespaces":[{"type":"pid","extra":"x"}],"intelRdt":{},"personality":{"domain":"LINUX"}},
                 "solaris":{},"windows":null}
                """);
        OciSpec s = OciSpec.load(bundle);
        assertEquals(List.of("true"), s.args());
        assertEquals(new GuestUser(5, 6, List.of()), s.user());
        assertEquals(List.of(new GuestMount("tmpfs", "/scratch", "tmpfs", "")), s.mounts());
    }

    @Test
    void escapesNumbersBooleansAndNullsAreRead() {
        OciSpec s = parse("""
                {"process":{"args":["echo","caf\\u00e9 \\ud83d\\ude00","a\\"b\\\\c\\nd"],"env":["A=x\\u003dy"],"terminal":true,
                   "cwd":null,"user":{"uid":0,"gid":0,"additionalGids":null},
                   "rlimits":[{"type":"RLIMIT_NOFILE","soft":1024,"hard":18446744073709551615}]},
                 "root":{"path":"/r","readonly":false},"hostname":null,"annotations":{"krun.cpus":"2","n":3,"b":false}}
                """);
        assertEquals(List.of("echo", "café \uD83D\uDE00", "a\"b\\c\nd"), s.args());
        assertEquals(Map.of("A", "x=y"), s.env());
        assertTrue(s.terminal());
        assertEquals("/", s.cwd(), "a null cwd is the default");
        assertEquals(new GuestUser(0, 0, List.of()), s.user());
        assertEquals(List.of(new Rlimit("NOFILE", 1024, -1)), s.rlimits());
        assertFalse(s.rootReadOnly());
        assertNull(s.hostname());
        assertEquals(2, s.cpus());
        assertEquals("3", s.annotations().get("n"), "an annotation that is not a string is kept as its text");
        assertEquals("false", s.annotations().get("b"));
        OciException e = assertThrows(OciException.class,
                () -> parse("{\"process\":{\"args\":[\"true\"],\"user\":{\"uid\":1.5}},\"root\":{\"path\":\"/r\"}}"));
        assertTrue(e.getMessage().contains("process.user.uid must be a number"), e.getMessage());
    }
}
