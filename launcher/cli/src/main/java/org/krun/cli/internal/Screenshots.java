package org.krun.cli.internal;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;

import javax.imageio.ImageIO;

import org.krun.api.Display;
import org.krun.api.Frame;
import org.krun.api.VirtualMachine;

/** {@code krun run --screenshot-on-exit FILE.png}: the last picture of each scanout as a PNG. */
final class Screenshots {

    private Screenshots() {
    }

    /**
     * Writes scanout 0's last frame to {@code file} and scanout N's to {@code FILE-N.png}; says on
     * {@code err} what it wrote, or why nothing (no GPU, nothing ever shown, a write that failed).
     */
    static void saveOnExit(VirtualMachine vm, Path file, PrintStream err) {
        List<Display> displays = vm.displays();
        if (displays.isEmpty()) {
            err.println("krun: --screenshot-on-exit: the VM has no display (is the org.krun.device.gpu bundle in the profile?)");
            return;
        }
        for (Display d : displays) {
            Path target = d.index() == 0 ? file : numbered(file, d.index());
            Optional<Frame> frame = d.lastFrame();
            if (frame.isEmpty()) {
                if (d.index() == 0) {
                    err.println("krun: --screenshot-on-exit: the guest never showed anything on its display; " + target
                            + " not written");
                }
                continue;
            }
            try {
                write(frame.get(), target);
                err.println("krun: screenshot of scanout " + d.index() + " (" + frame.get().width() + "x"
                        + frame.get().height() + ") saved as " + target);
            } catch (IOException e) {
                err.println("krun: --screenshot-on-exit: cannot write " + target + ": " + e.getMessage());
            }
        }
    }

    /** Writes {@code frame} as a PNG, replacing {@code file} whole (written beside it, then renamed). */
    static void write(Frame frame, Path file) throws IOException {
        Path abs = file.toAbsolutePath();
        Path tmp = abs.resolveSibling("." + abs.getFileName() + ".tmp");
        if (!ImageIO.write(frame.toImage(), "png", tmp.toFile())) {
            throw new IOException("no PNG writer in this Java runtime");
        }
        Files.move(tmp, abs, java.nio.file.StandardCopyOption.REPLACE_EXISTING);
    }

    private static Path numbered(Path file, int index) {
        String name = file.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String numbered = dot < 0 ? name + "-" + index : name.substring(0, dot) + "-" + index + name.substring(dot);
        return file.resolveSibling(numbered);
    }
}
