package org.krun.config.internal;

import java.io.OutputStream;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.Optional;

import org.krun.api.ConsoleSpec;
import org.krun.api.Networking;
import org.krun.api.SoundSpec;
import org.krun.api.VmConfig;
import org.krun.api.VmConfigException;

/** Turns a configuration's properties into a {@link VmConfig}. Pure: no host access, no framework. */
final class VmConfigs {

    private VmConfigs() {
    }

    /**
     * @param defaultKernel the kernel when the configuration names none
     * @param defaultRoot the root when the configuration names none and boots the default kernel
     * @param output where the command's output and the console go
     * @throws VmConfigException with a one-line message naming the bad property
     */
    static VmConfig from(VmConfiguration c, Optional<Path> defaultKernel, Optional<Path> defaultRoot,
            OutputStream output) {
        List<String> command = List.of(c.command());
        if (command.isEmpty() || command.get(0).isBlank()) {
            throw new VmConfigException("property command is missing");
        }
        boolean kernelGiven = !c.kernel().isBlank();
        Path kernel = kernelGiven ? Path.of(c.kernel()) : defaultKernel.orElseThrow(() -> new VmConfigException(
                "property kernel is missing and there is no default (framework property krun.kernel)"));
        VmConfig.Builder b = VmConfig.builder()
                .cpus(c.cpus())
                .memoryMib(c.memoryMib())
                .kernel(kernel)
                .command(command)
                .workdir(c.workdir())
                .hostname(c.hostname())
                .defaultDevices(c.defaultDevices())
                .kernelLog(c.kernelLog())
                .console(ConsoleSpec.pipes(output, output, false));
        if (!c.initrd().isBlank()) {
            b.initrd(Path.of(c.initrd()));
        }
        Optional<Path> root = Optional.empty();
        if (!c.root().isBlank()) {
            root = Optional.of(Path.of(c.root()));
            b.root(root.get());
        } else if (!kernelGiven && defaultRoot.isPresent()) {
            // krun's own tree, shared by every VM: read-only to each, with a writable layer of its own
            root = defaultRoot;
            b.root(defaultRoot.get()).ephemeralRoot(true);
        }
        Networking.apply(b, List.of(c.net()), List.of(c.vsock()), List.of(c.publish()), root, Networking.PROPERTIES);
        if (!c.gpu().isBlank()) {
            try {
                b.device(org.krun.api.GpuSpec.parse(c.gpu()));
            } catch (VmConfigException e) {
                throw new VmConfigException("property gpu: " + e.getMessage());
            }
        }
        for (String e : c.env()) {
            int eq = e.indexOf('=');
            if (eq <= 0) {
                throw new VmConfigException("property env: '" + e + "' is not NAME=VALUE");
            }
            b.env(e.substring(0, eq), e.substring(eq + 1));
        }
        for (String a : c.kernelArgs()) {
            b.kernelArg(a);
        }
        if (!c.sound().isBlank()) {
            try {
                b.device(SoundSpec.parse(c.sound()));
            } catch (VmConfigException e) {
                throw new VmConfigException("property sound: " + e.getMessage(), e);
            }
        }
        if (c.timeoutSeconds() < 0) {
            throw new VmConfigException("property timeoutSeconds must not be negative");
        }
        if (c.timeoutSeconds() > 0) {
            b.timeout(Duration.ofSeconds(c.timeoutSeconds()));
        }
        return b.build();
    }
}
