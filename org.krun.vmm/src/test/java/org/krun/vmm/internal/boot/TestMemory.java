package org.krun.vmm.internal.boot;

import java.lang.foreign.Arena;
import java.util.List;

import org.krun.spi.memory.GuestMemory;
import org.krun.spi.memory.GuestRegion;

/** Guest RAM at address 0 over an arena segment, pre-filled so that writes (and missing writes) show. */
final class TestMemory implements AutoCloseable {
    final Arena arena = Arena.ofConfined();
    final GuestMemory memory;

    TestMemory(long size, byte fill) {
        var segment = arena.allocate(size, 4096);
        segment.fill(fill);
        memory = new GuestMemory(List.of(new GuestRegion(0, segment)));
    }

    @Override
    public void close() {
        arena.close();
    }
}
