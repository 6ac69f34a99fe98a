package org.krun.vmm.internal;

import java.lang.System.Logger.Level;
import java.util.ArrayDeque;
import java.util.Deque;


/**
 * Owns what a VM acquired, in order, and releases it in reverse: a failed start and a stopped VM
 * release through the same path. A release that fails is logged and the rest still run.
 */
final class ResourceStack {
    private static final System.Logger LOG = System.getLogger(ResourceStack.class.getName());

    private record Entry(String what, AutoCloseable release) {
    }

    private final Deque<Entry> entries = new ArrayDeque<>();

    synchronized <T extends AutoCloseable> T push(String what, T resource) {
        entries.push(new Entry(what, resource));
        return resource;
    }

    synchronized void pushAction(String what, Runnable release) {
        entries.push(new Entry(what, release::run));
    }

    synchronized void releaseAll() {
        while (!entries.isEmpty()) {
            Entry e = entries.pop();
            try {
                e.release.close();
            } catch (Exception ex) {
                LOG.log(Level.WARNING, "releasing " + e.what + " failed: " + ex.toString());
            }
        }
    }
}
