package org.krun.vmm.internal;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.krun.api.ConsoleSpec;
import org.krun.api.GuestMount;
import org.krun.api.Rlimit;
import org.krun.api.VmConfig;
import org.krun.vmm.internal.legacy.InitPorts;

/** The guest init's configuration file (/krun/config.json); guest/init/init.c documents the schema. */
final class InitConfig {

    private InitConfig() {
    }

    static byte[] json(VmConfig c) {
        return json(c, Map.of(), Map.of());
    }

    /**
     * The configuration, with {@code files} (guest path to contents that replace it) and {@code appends}
     * (guest path to lines added to it) for the init to provide.
     */
    static byte[] json(VmConfig c, Map<String, String> files, Map<String, String> appends) {
        List<String> env = new ArrayList<>();
        for (Map.Entry<String, String> e : c.env().entrySet()) {
            env.add(e.getKey() + "=" + e.getValue());
        }
        List<String> rlimits = new ArrayList<>();
        for (Rlimit r : c.rlimits()) {
            rlimits.add(r.resource() + "=" + r.soft() + ":" + r.hard());
        }
        StringBuilder sb = new StringBuilder(256);
        sb.append('{');
        sb.append("\"cmd\":");
        array(sb, c.command());
        sb.append(",\"env\":");
        array(sb, env);
        sb.append(",\"workdir\":");
        string(sb, c.workdir());
        sb.append(",\"hostname\":");
        string(sb, c.hostname());
        c.user().ifPresent(u -> {
            StringBuilder spec = new StringBuilder().append(u.uid()).append(':').append(u.gid());
            for (int i = 0; i < u.groups().size(); i++) {
                spec.append(i == 0 ? ':' : ',').append(u.groups().get(i));
            }
            sb.append(",\"user\":");
            string(sb, spec.toString());
        });
        if (c.signals()) {
            sb.append(",\"signals\":1"); // on the console's krun-signals port (KrunService asks for it)
        }
        if (c.execPort() > 0) {
            sb.append(",\"exec_port\":").append(c.execPort()); // the init's exec agent listens there (exec.c)
        }
        sb.append(",\"rlimits\":");
        array(sb, rlimits);
        sb.append(",\"console\":");
        string(sb, c.console().mode() == ConsoleSpec.Mode.TERMINAL ? "terminal" : "pipes");
        sb.append(",\"columns\":").append(c.console().columns());
        sb.append(",\"rows\":").append(c.console().rows());
        sb.append(",\"exit_port\":").append(InitPorts.EXIT_STATUS_PORT);
        c.rootMount().ifPresent(m -> {
            sb.append(",\"root_source\":");
            string(sb, m.source());
            sb.append(",\"root_fstype\":");
            string(sb, m.fstype());
            sb.append(",\"root_options\":");
            string(sb, m.options());
            if (c.ephemeralRoot() && c.root().isPresent()) {
                sb.append(",\"root_overlay\":1");
            }
        });
        pairs(sb, "files", files);
        pairs(sb, "appends", appends);
        if (!c.mounts().isEmpty()) {
            List<String> quads = new ArrayList<>();
            for (GuestMount m : c.mounts()) {
                quads.addAll(List.of(m.source(), m.target(), m.fstype(), m.options()));
            }
            sb.append(",\"mounts\":");
            array(sb, quads);
        }
        sb.append("}\n");
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    /**
     * The configuration a templated init reads after the template point (docs/templates.md): the same, plus
     * what restored siblings must not share, the host's wall clock as {@code "clock": "SECONDS.NANOS"} and
     * fresh host entropy as {@code "seed"} (hex) for the guest's random pool; and {@code "disks"}, pairs of
     * (virtio-mmio device index, capacity in sectors) for every block device: the guest kernel probed them at
     * the template's boot, so the init waits until it has taken each disk's capacity from this run's device
     * (after the configuration change the device raises on restore) and reads its partition table again.
     */
    static byte[] forTemplatedInit(VmConfig c, Map<String, String> files, Map<String, String> appends,
            java.time.Instant now, byte[] seed, Map<Integer, Long> disks) {
        String json = new String(json(c, files, appends), StandardCharsets.UTF_8).stripTrailing();
        StringBuilder sb = new StringBuilder(json.length() + 200);
        sb.append(json, 0, json.length() - 1); // without the closing brace
        sb.append(",\"clock\":");
        string(sb, now.getEpochSecond() + "." + String.format("%09d", now.getNano()));
        sb.append(",\"seed\":");
        string(sb, java.util.HexFormat.of().formatHex(seed));
        if (!disks.isEmpty()) {
            List<String> flat = new ArrayList<>();
            disks.forEach((index, sectors) -> {
                flat.add(Integer.toString(index));
                flat.add(Long.toUnsignedString(sectors));
            });
            sb.append(",\"disks\":");
            array(sb, flat);
        }
        sb.append("}\n");
        return sb.toString().getBytes(StandardCharsets.UTF_8);
    }

    private static void pairs(StringBuilder sb, String key, Map<String, String> map) {
        if (map.isEmpty()) {
            return;
        }
        List<String> flat = new ArrayList<>();
        map.forEach((path, content) -> {
            flat.add(path);
            flat.add(content);
        });
        sb.append(",\"").append(key).append("\":");
        array(sb, flat);
    }

    private static void array(StringBuilder sb, List<String> items) {
        sb.append('[');
        for (int i = 0; i < items.size(); i++) {
            if (i > 0) {
                sb.append(',');
            }
            string(sb, items.get(i));
        }
        sb.append(']');
    }

    /** A JSON string; VmConfig has already refused NUL, which the guest's C strings could not carry. */
    static void string(StringBuilder sb, String s) {
        sb.append('"');
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            switch (ch) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                default -> {
                    if (ch < 0x20) {
                        sb.append(String.format("\\u%04x", (int) ch));
                    } else {
                        sb.append(ch);
                    }
                }
            }
        }
        sb.append('"');
    }
}
