package org.krun.vmm.internal;

import java.util.ArrayDeque;
import java.util.Deque;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Owns what a VM acquired, in order, and releases it in reverse: a failed start and a stopped VM
 * release through the same path. A release that fails is logged and the rest still run.
 */
final class ResourceStack {
    private static final Logger LOG = LoggerFactory.getLogger(ResourceStack.class);

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
                LOG.warn("releasing {} failed: {}", e.what, ex.toString());
            }
        }
    }
}
