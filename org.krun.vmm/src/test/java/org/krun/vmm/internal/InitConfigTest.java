package org.krun.vmm.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.krun.api.ConsoleSpec;
import org.krun.api.Rlimit;
import org.krun.api.VmConfig;

class InitConfigTest {

    private static String json(VmConfig c) {
        return new String(InitConfig.json(c), StandardCharsets.UTF_8);
    }

    private static String quoted(String s) {
        StringBuilder sb = new StringBuilder();
        InitConfig.string(sb, s);
        return sb.toString();
    }

    @Test
    void configHoldsEveryFieldTheInitReadsInItsSchemaOrder() {
        VmConfig c = VmConfig.builder().kernel(Path.of("/k"))
                .command("sh", "-c", "echo \"$HOME\"")
                .env("A", "1").env("B", "x y")
                .workdir("/work").hostname("box")
                .rlimit(new Rlimit("nofile", 1024, 2048)).rlimit(new Rlimit("CORE", -1, -1))
                .build();
        assertEquals("{\"cmd\":[\"sh\",\"-c\",\"echo \\\"$HOME\\\"\"],\"env\":[\"A=1\",\"B=x y\"],"
                + "\"workdir\":\"/work\",\"hostname\":\"box\",\"rlimits\":[\"NOFILE=1024:2048\",\"CORE=-1:-1\"],"
                + "\"console\":\"pipes\",\"columns\":0,\"rows\":0,\"exit_port\":244}\n", json(c));
    }

    @Test
    void emptyListsAndDefaultsAreWrittenToo() {
        VmConfig c = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true").build();
        assertEquals("{\"cmd\":[\"/bin/true\"],\"env\":[],\"workdir\":\"/\",\"hostname\":\"krun\",\"rlimits\":[],"
                + "\"console\":\"pipes\",\"columns\":0,\"rows\":0,\"exit_port\":244}\n", json(c));
    }

    @Test
    void theUserTravelsAsUidGidAndSupplementaryGroups() {
        VmConfig.Builder b = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true");
        assertEquals(true, json(b.user(new org.krun.api.GuestUser(1000, 100, java.util.List.of(10L, 20L))).build())
                .contains("\"hostname\":\"krun\",\"user\":\"1000:100:10,20\",\"rlimits\""));
        assertEquals(true, json(b.user(new org.krun.api.GuestUser(0, 0)).build()).contains("\"user\":\"0:0\","));
        assertEquals(false, json(b.user(null).build()).contains("user"), "without a user the init stays root");
    }

    @Test
    void theInitWaitsForSignalsOnlyWhenTheConfigurationAsks() {
        VmConfig.Builder b = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true");
        assertEquals(false, json(b.build()).contains("signals"), "no signal port by default");
        assertEquals(true, json(b.signals(true).build()).contains(",\"signals\":1,"));
    }

    @Test
    void theInitServesExecRequestsOnlyWhenTheConfigurationAsks() {
        VmConfig.Builder b = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true");
        assertEquals(false, json(b.build()).contains("exec_port"), "no exec agent by default");
        assertEquals(true, json(b.execPort(1025).build()).contains(",\"exec_port\":1025,"));
    }

    @Test
    void anEphemeralRootAsksTheInitForAWritableLayerOverTheReadOnlyShare() {
        VmConfig.Builder b = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true").root(Path.of("/srv/root"))
                .rootMount(new org.krun.api.GuestMount("/dev/root", "/", "virtiofs", "ro"));
        String live = json(b.build());
        String ephemeral = json(b.ephemeralRoot(true).build());
        assertEquals(false, live.contains("root_overlay"), live);
        assertEquals(true, ephemeral.contains("\"root_source\":\"/dev/root\",\"root_fstype\":\"virtiofs\","
                + "\"root_options\":\"ro\",\"root_overlay\":1"), ephemeral);
    }

    @Test
    void devicesFilesAndAppendsTravelAsPathContentPairs() {
        VmConfig c = VmConfig.builder().kernel(Path.of("/k")).command("/bin/true").build();
        String j = new String(InitConfig.json(c, java.util.Map.of("/etc/resolv.conf", "nameserver 192.0.2.53\n"),
                java.util.Map.of("/etc/hosts", "192.0.2.1 host.krun.internal\n")), StandardCharsets.UTF_8);
        assertEquals(true, j.contains(",\"files\":[\"/etc/resolv.conf\",\"nameserver 192.0.2.53\\n\"]"), j);
        assertEquals(true, j.contains(",\"appends\":[\"/etc/hosts\",\"192.0.2.1 host.krun.internal\\n\"]"), j);
        assertEquals(false, json(c).contains("files"), "no devices' files, no key");
    }

    @Test
    void twoDevicesFilesForOnePathAreJoinedLineByLine() {
        GuestFiles files = new GuestFiles();
        files.add(new org.krun.spi.virtio.GuestSetup(java.util.List.of(), java.util.Map.of(),
                java.util.Map.of("/etc/hosts", "10.0.0.1 a")));
        files.add(new org.krun.spi.virtio.GuestSetup(java.util.List.of(), java.util.Map.of(),
                java.util.Map.of("/etc/hosts", "10.0.0.2 b\n")));
        assertEquals("10.0.0.1 a\n10.0.0.2 b\n", files.append().get("/etc/hosts"));
    }

    @Test
    void devicesFilesBeyondTheCapAreAConfigurationError() {
        GuestFiles files = new GuestFiles();
        String big = "x".repeat(GuestFiles.MAX_BYTES);
        org.junit.jupiter.api.Assertions.assertThrows(org.krun.api.VmConfigException.class, () -> files.add(
                new org.krun.spi.virtio.GuestSetup(java.util.List.of(), java.util.Map.of("/etc/big", big),
                        java.util.Map.of())));
    }

    @Test
    void terminalConsoleCarriesItsSize() {
        VmConfig c = VmConfig.builder().kernel(Path.of("/k")).command("sh")
                .console(ConsoleSpec.terminal(OutputStream.nullOutputStream(), 132, 43)).build();
        String j = json(c);
        assertEquals(true, j.contains("\"console\":\"terminal\",\"columns\":132,\"rows\":43,"), j);
    }

    @ParameterizedTest(name = "{0}")
    @CsvSource(delimiter = '|', value = {
        "plain            | abc                | \"abc\"",
        "quote            | a\"b               | \"a\\\"b\"",
        "backslash        | a\\b               | \"a\\\\b\"",
        "slash stays      | /usr/bin           | \"/usr/bin\"",
        "non-ASCII stays  | héllo €            | \"héllo €\"",
    })
    void stringsAreEscapedForJson(String what, String raw, String expected) {
        assertEquals(expected, quoted(raw), what);
    }

    @Test
    void controlCharactersAreEscaped() {
        assertEquals("\"\\n\\r\\t\\u0001\\u001f\\u0008\\u000c\"", quoted("\n\r\t\u0001\u001f\b\f"));
        assertEquals("\"\u007f\"", quoted("\u007f"), "DEL is not a JSON control character");
    }

    @Test
    void outputIsUtf8() {
        VmConfig c = VmConfig.builder().kernel(Path.of("/k")).command("echo", "ü").build();
        byte[] bytes = InitConfig.json(c);
        String asLatin1 = new String(bytes, StandardCharsets.ISO_8859_1);
        assertEquals(true, asLatin1.contains("\"echo\",\"\u00c3\u00bc\""), "ü as two UTF-8 bytes");
    }
}
