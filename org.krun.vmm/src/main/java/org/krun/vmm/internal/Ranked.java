package org.krun.vmm.internal;

import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * Services of one kind, best first as OSGi ranks them: highest {@code service.ranking}, then lowest
 * {@code service.id} (the earliest registered). Removing the best leaves the next one in charge.
 * Thread-safe.
 */
final class Ranked<T> {

    private record Entry<T>(T service, int ranking, long id) {
    }

    private static final Comparator<Entry<?>> BEST_FIRST = Comparator.<Entry<?>>comparingInt(e -> -e.ranking())
            .thenComparingLong(Entry::id);

    /** org.osgi.framework.SERVICE_RANKING and SERVICE_ID. */
    static final String SERVICE_RANKING = "service.ranking";
    static final String SERVICE_ID = "service.id";

    private final List<Entry<T>> entries = new ArrayList<>();
    /** Order of addition, for services added without a service.id (outside a framework). */
    private long added;

    synchronized void add(T service, Map<String, ?> properties) {
        entries.removeIf(e -> e.service() == service);
        added++;
        long id = properties.get(SERVICE_ID) instanceof Long l ? l : Long.MAX_VALUE / 2 + added;
        entries.add(new Entry<>(service, ranking(properties), id));
        entries.sort(BEST_FIRST);
    }

    synchronized void remove(T service) {
        entries.removeIf(e -> e.service() == service);
    }

    synchronized Optional<T> best() {
        return entries.isEmpty() ? Optional.empty() : Optional.of(entries.getFirst().service());
    }

    /** Every service, best first. */
    synchronized List<T> all() {
        return entries.stream().map(Entry::service).toList();
    }

    synchronized boolean isEmpty() {
        return entries.isEmpty();
    }

    private static int ranking(Map<String, ?> properties) {
        return properties.get(SERVICE_RANKING) instanceof Integer r ? r : 0;
    }
}
