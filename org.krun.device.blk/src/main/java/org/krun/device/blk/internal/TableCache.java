package org.krun.device.blk.internal;

import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A bounded, least-recently-used cache of qcow2 metadata tables keyed by their offset in the image. Every
 * change to a table is written to the image at once, so evicting never loses anything. Thread-safe.
 */
final class TableCache<T> {

    private final Map<Long, T> tables;

    TableCache(int maxTables) {
        this.tables = new LinkedHashMap<>(16, 0.75f, true) {
            private static final long serialVersionUID = 1L;

            @Override
            protected boolean removeEldestEntry(Map.Entry<Long, T> eldest) {
                return size() > maxTables;
            }
        };
    }

    synchronized T get(long offset) {
        return tables.get(offset);
    }

    synchronized void put(long offset, T table) {
        tables.put(offset, table);
    }

    synchronized void remove(long offset) {
        tables.remove(offset);
    }
}
