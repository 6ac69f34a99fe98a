package org.krun.cli.internal.oci;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonParseException;
import com.google.gson.Strictness;
import com.google.gson.ToNumberPolicy;

/**
 * The JSON {@code krun oci} reads and writes (RFC 8259), through Gson. Parsed, objects are {@code Map<String, Object>}
 * in document order, arrays {@code List<Object>}, numbers {@code Long} when they fit one and {@code Double} otherwise
 * (RLIM_INFINITY, 2^64 - 1, is past a long), and {@code true}, {@code false}, {@code null} themselves. Parsing is
 * strict: no comments, single quotes, trailing commas or text after the value, which Gson's lenient default allows.
 */
final class OciJson {

    private static final Gson GSON = new GsonBuilder()
            .setStrictness(Strictness.STRICT)
            .setObjectToNumberStrategy(ToNumberPolicy.LONG_OR_DOUBLE)
            .serializeNulls() // a null member is written, not dropped
            .disableHtmlEscaping() // '<', '=', '&' in annotations and arguments stay as they are
            .create();

    private OciJson() {
    }

    /** Thrown for text that is not JSON: one line, saying where. */
    static final class JsonException extends RuntimeException {
        JsonException(String message) {
            super(message);
        }
    }

    /** The value {@code text} holds; fails on anything but one JSON value (empty text too). */
    static Object parse(String text) {
        if (text.isBlank()) {
            throw new JsonException("no JSON value, the text is empty");
        }
        try {
            return GSON.fromJson(text, Object.class);
        } catch (JsonParseException e) {
            throw new JsonException(oneLine(e));
        }
    }

    /** {@code value} as JSON text: maps, lists, strings, numbers, booleans and null. */
    static String write(Object value) {
        return GSON.toJson(value);
    }

    /** What {@link #oneLine} keeps of a long message (a path 255 levels deep, say). */
    static final int MAX_MESSAGE = 200;

    /**
     * The reason of a parse failure, on one line: Gson wraps the reader's exception, whose message says the line,
     * column and path, adds a second line pointing to its troubleshooting guide, and words some failures as advice
     * to a programmer ("Use JsonReader.setStrictness(Strictness.LENIENT) to accept malformed JSON at ..."), which
     * the user of a container engine cannot take: that becomes "malformed JSON at ...".
     */
    private static String oneLine(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        String m = t.getMessage() == null ? t.getClass().getSimpleName() : t.getMessage();
        int nl = m.indexOf('\n');
        m = (nl < 0 ? m : m.substring(0, nl)).strip();
        m = m.replaceFirst("^Use JsonReader\\.setStrictness\\(\\S+\\) to accept ", "");
        return m.length() > MAX_MESSAGE ? m.substring(0, MAX_MESSAGE) + "..." : m;
    }
}
