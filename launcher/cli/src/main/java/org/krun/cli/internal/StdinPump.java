package org.krun.cli.internal;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;

/** The process's standard input into a guest's console, for krun run and krun oci alike. */
public final class StdinPump {

    private StdinPump() {
    }

    /** Copies host stdin to the guest until end-of-file, then closes the guest's input. */
    public static void start(InputStream in, OutputStream toGuest) {
        Thread t = Thread.ofPlatform().daemon(true).name("krun-stdin").start(() -> {
            byte[] buf = new byte[16384];
            try {
                int n;
                while ((n = in.read(buf)) > 0) {
                    toGuest.write(buf, 0, n);
                }
            } catch (IOException e) {
                // host stdin failed: treat as end of input
            }
            try {
                toGuest.close();
            } catch (IOException e) {
                // nothing left to tell the guest
            }
        });
        t.setUncaughtExceptionHandler((th, ex) -> { });
    }
}
