package org.krun.vmm.internal;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Why a guest stopped without reporting its command's status, in the kernel's own words: the guest kernel
 * writes its errors (loglevel 4 and worse, a panic in full) to the early serial console, a bounded tail of
 * which the VM keeps ({@link ConsoleTail}); this reads the panic and what led to it out of that tail.
 */
final class KernelLog {
    /** Bytes of the kernel's serial output a VM keeps. */
    static final int TAIL_BYTES = 16 * 1024;

    private static final Pattern PANIC = Pattern.compile("Kernel panic - not syncing: (.*?)\\s*(?:\\]---)?\\s*$");
    /** Kernel messages that explain a panic after them (init/initramfs.c, init/main.c). */
    private static final List<Pattern> CAUSES = List.of(
            Pattern.compile("(Initramfs unpacking failed: .*)"),
            Pattern.compile("(Failed to execute \\S+ \\(error -?\\d+\\))"),
            Pattern.compile("(Requested init \\S+ failed \\(error -?\\d+\\))"),
            Pattern.compile("(INITRD: .*)"));

    private KernelLog() {
    }

    /**
     * The one-line reason a guest that stopped for {@code cause} ({@code reboot}, ...) without a status gives:
     * its kernel panic and the messages that explain it, whether the init ever ran, or the last thing its kernel
     * said.
     */
    static String stopReason(byte[] tail, String cause, boolean initStarted) {
        List<String> lines = lines(tail);
        Optional<String> panic = lines.stream().map(PANIC::matcher).filter(Matcher::find).map(m -> m.group(1))
                .reduce((first, second) -> second);
        List<String> causes = new ArrayList<>();
        for (String line : lines) {
            for (Pattern p : CAUSES) {
                Matcher m = p.matcher(line);
                if (m.find() && !causes.contains(m.group(1))) {
                    causes.add(m.group(1));
                }
            }
        }
        String init = initStarted ? "" : "the guest's init did not start: ";
        if (panic.isPresent()) {
            return init + "guest kernel panic: " + panic.get()
                    + (causes.isEmpty() ? "" : " (after: " + String.join("; ", causes) + ")");
        }
        String stopped = init + "guest stopped (" + cause + ") without reporting an exit status";
        if (!causes.isEmpty()) {
            return stopped + " (kernel: " + String.join("; ", causes) + ")";
        }
        return lines.isEmpty() ? stopped : stopped + " (last kernel message: " + lines.get(lines.size() - 1) + ")";
    }

    /** The tail's complete, printable lines, without the kernel's timestamps; the first may be cut short, so it goes. */
    private static List<String> lines(byte[] tail) {
        String text = new String(tail, StandardCharsets.UTF_8);
        List<String> all = new ArrayList<>(text.lines().toList());
        if (tail.length >= TAIL_BYTES && !all.isEmpty()) {
            all.remove(0);
        }
        List<String> out = new ArrayList<>();
        for (String l : all) {
            String s = l.replaceFirst("^\\[\\s*\\d+\\.\\d+\\]\\s*", "").replaceAll("\\p{Cntrl}", "").strip();
            if (!s.isEmpty() && !s.startsWith("reboot: ")) {
                out.add(s);
            }
        }
        return out;
    }
}
