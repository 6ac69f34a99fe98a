package org.krun.vmm.internal.boot;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

import org.krun.api.VmConfigException;
import org.krun.spi.memory.GuestMemory;

/** The kernel command line, assembled argument by argument and bounded by x86's 2048 bytes. */
public final class KernelCommandLine {
    private final List<String> args = new ArrayList<>();

    public KernelCommandLine add(String arg) {
        if (arg.isEmpty() || arg.indexOf('\0') >= 0 || arg.indexOf('\n') >= 0) {
            throw new VmConfigException("invalid kernel argument '" + arg + "'");
        }
        args.add(arg);
        return this;
    }

    public KernelCommandLine addAll(List<String> more) {
        more.forEach(this::add);
        return this;
    }

    public List<String> args() {
        return List.copyOf(args);
    }

    @Override
    public String toString() {
        return String.join(" ", args);
    }

    /** Writes the NUL-terminated line at {@link X86Layout#CMDLINE_ADDRESS}; returns its length without NUL. */
    public int write(GuestMemory mem) {
        byte[] bytes = toString().getBytes(StandardCharsets.UTF_8);
        if (bytes.length >= X86Layout.CMDLINE_MAX) {
            throw new VmConfigException("kernel command line is " + bytes.length + " bytes; x86 allows "
                    + (X86Layout.CMDLINE_MAX - 1));
        }
        mem.write(X86Layout.CMDLINE_ADDRESS, bytes);
        mem.setByte(X86Layout.CMDLINE_ADDRESS + bytes.length, (byte) 0);
        return bytes.length;
    }
}
