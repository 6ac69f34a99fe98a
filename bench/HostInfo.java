import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;

/** What kind of host a bench runs on; shared by the bench programs (Java's multi-file source launcher). */
final class HostInfo {
    private HostInfo() {
    }

    /** Hardware virtualisation, kvm-pvm, or neither, in words; starts with "hardware" for the first. */
    static String hostKind() throws IOException {
        boolean pvm = Files.isDirectory(Path.of("/sys/module/kvm_pvm"));
        String flags = Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("flags"))
                .findFirst().orElse("");
        boolean vmx = flags.contains(" vmx") || flags.contains(" svm");
        if (pvm) {
            return "kvm-pvm (no hardware virtualisation: /sys/module/kvm_pvm present, no vmx/svm)";
        }
        return vmx ? "hardware virtualisation (" + (flags.contains(" vmx") ? "vmx" : "svm") + ")"
                : "no hardware virtualisation flag (vmx/svm) seen";
    }

    static String cpuModel() throws IOException {
        return Files.readAllLines(Path.of("/proc/cpuinfo")).stream().filter(l -> l.startsWith("model name"))
                .findFirst().map(l -> l.substring(l.indexOf(':') + 1).trim()).orElse("unknown CPU");
    }
}
