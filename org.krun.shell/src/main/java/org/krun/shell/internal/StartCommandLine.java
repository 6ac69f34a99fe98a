package org.krun.shell.internal;

import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

/**
 * {@code krun:start}'s arguments: its own options come first, up to the first argument that is not an
 * option or up to {@code --}; everything after belongs to the guest command, dashes included (as with
 * {@code krun run ... -- CMD ARGS}). Gogo's own option parsing would take a {@code -c} anywhere in the line,
 * the guest's {@code sh -c} among them, so {@code start} parses here.
 */
record StartCommandLine(Commands.StartOptions options, List<String> command) {
    static final String USAGE = "krun:start [-c CPUS] [-m MIB] [-k KERNEL] [-r ROOT] [-w DIR] [-a 'KERNEL ARGS'] [-t] "
            + "[--timeout S] [--no-default-devices] [--gpu MODE] [--] CMD ARGS...";

    static StartCommandLine parse(List<String> args) {
        int cpus = 1;
        int memoryMib = 256;
        Optional<Path> kernel = Optional.empty();
        Optional<Path> root = Optional.empty();
        String workdir = "/";
        List<String> kernelArgs = List.of();
        boolean terminal = false;
        long timeoutSeconds = 0;
        boolean defaultDevices = true;
        Optional<org.krun.api.GpuSpec> gpu = Optional.empty();
        int i = 0;
        for (; i < args.size(); i++) {
            String a = args.get(i);
            if (a.equals("--")) {
                i++;
                break;
            }
            if (!a.startsWith("-") || a.equals("-")) {
                break;
            }
            String name = a;
            String inline = null;
            int eq = a.indexOf('=');
            if (a.startsWith("--") && eq > 0) {
                name = a.substring(0, eq);
                inline = a.substring(eq + 1);
            }
            switch (name) {
                case "-t", "--terminal" -> terminal = flag(name, inline);
                case "--no-default-devices" -> defaultDevices = !flag(name, inline);
                default -> {
                    String value = inline;
                    if (value == null) {
                        if (i + 1 >= args.size()) {
                            throw new IllegalArgumentException("option " + name + " needs a value (" + USAGE + ")");
                        }
                        value = args.get(++i);
                    }
                    switch (name) {
                        case "-c", "--cpus" -> cpus = number(name, value);
                        case "-m", "--memory" -> memoryMib = number(name, value);
                        case "-k", "--kernel" -> kernel = path(value);
                        case "-r", "--root" -> root = path(value);
                        case "-w", "--workdir" -> workdir = value;
                        case "-a", "--kernel-args" -> kernelArgs = Commands.words(value);
                        case "--timeout" -> timeoutSeconds = number(name, value);
                        case "--gpu" -> gpu = Optional.of(gpu(value));
                        default -> throw new IllegalArgumentException("unknown option " + name + " (" + USAGE + ")");
                    }
                }
            }
        }
        List<String> command = List.copyOf(args.subList(i, args.size()));
        if (command.isEmpty()) {
            throw new IllegalArgumentException("no command given: " + USAGE);
        }
        return new StartCommandLine(new Commands.StartOptions(cpus, memoryMib, kernel, root, workdir, kernelArgs,
                terminal, Duration.ofSeconds(timeoutSeconds), defaultDevices, gpu), command);
    }

    /** {@code --gpu MODE[,size=WxH][,scanouts=N][,memory=MiB]}, as {@code krun run} takes it. */
    private static org.krun.api.GpuSpec gpu(String value) {
        try {
            return org.krun.api.GpuSpec.parse(value);
        } catch (org.krun.api.VmConfigException e) {
            throw new IllegalArgumentException(e.getMessage());
        }
    }

    private static boolean flag(String name, String inline) {
        if (inline != null) {
            throw new IllegalArgumentException("option " + name + " takes no value");
        }
        return true;
    }

    private static int number(String name, String value) {
        try {
            int n = Integer.parseInt(value);
            if (n >= 0) {
                return n;
            }
        } catch (NumberFormatException e) {
            // below
        }
        throw new IllegalArgumentException("option " + name + " needs a whole number, not '" + value + "'");
    }

    private static Optional<Path> path(String p) {
        return p.isBlank() ? Optional.empty() : Optional.of(Path.of(p));
    }
}
