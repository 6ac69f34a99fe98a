package org.krun.cli.internal.oci;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

import org.junit.jupiter.api.Test;
import org.krun.cli.internal.oci.OciJson.JsonException;

/** The JSON krun oci reads (config.json, state.json) and writes (state, features, --log lines), through Gson. */
class OciJsonTest {

    @Test
    void valuesBecomeMapsListsLongsDoublesBooleansAndNull() {
        Object v = OciJson.parse("""
                {"z":1,"a":[-2,3.5,1e3,18446744073709551615,true,false,null],"m":{},
                 "s":"caf\\u00e9 \\ud83d\\ude00 \\"q\\" \\\\ \\/ \\b\\f\\n\\r\\t"}
                """);
        Map<?, ?> m = (Map<?, ?>) v;
        assertEquals(List.of("z", "a", "m", "s"), List.copyOf(m.keySet()), "document order");
        assertEquals(1L, m.get("z"));
        assertEquals(Arrays.asList(-2L, 3.5, 1000.0, 1.8446744073709552E19, true, false, null), m.get("a"));
        assertEquals(Map.of(), m.get("m"));
        assertEquals("café \uD83D\uDE00 \"q\" \\ / \b\f\n\r\t", m.get("s"));
        assertNull(OciJson.parse("null"));
        assertEquals(9223372036854775807L, OciJson.parse("9223372036854775807"), "a long to its last value");
    }

    @Test
    void writesWhatReadsBackAndEscapesOnlyWhatJsonNeeds() {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("s", "a\"b\\c\nd\te\u0001 é \uD83D\uDE00 <x>=&'");
        m.put("n", List.of(1L, -2L, 3.5));
        m.put("b", true);
        m.put("null", null);
        m.put("o", Map.of());
        String text = OciJson.write(m);
        assertEquals("{\"s\":\"a\\\"b\\\\c\\nd\\te\\u0001 é \uD83D\uDE00 <x>=&'\",\"n\":[1,-2,3.5],\"b\":true,\"null\":null,\"o\":{}}",
                text);
        assertEquals(m, OciJson.parse(text));
    }

    @Test
    void anythingButOneJsonValueFailsWithOneLine() {
        String[] bad = {"", "  \n", "{", "{\"a\":1", "{\"a\":1,}", "[1,]", "[1] x", "{} {}", "{'a':1}", "{a:1}",
            "// note\n{}", "/* note */{}", "{\"a\":NaN}", "[Infinity]", "[01]", "[1.]", "[-]", "[tru]", "\"tab\there\"",
            "\"\\x41\"", "\"\\u12\"", "{\"a\" 1}", "[1 2]", "[".repeat(100_000), "{\"a\":".repeat(100_000)};
        for (String text : bad) {
            String shown = text.length() > 40 ? text.substring(0, 40) + "..." : text;
            JsonException e = assertThrows(JsonException.class, () -> OciJson.parse(text), shown);
            assertFalse(e.getMessage().isBlank(), shown);
            assertFalse(e.getMessage().contains("\n"), "one line for " + shown + ": " + e.getMessage());
            assertTrue(e.getMessage().length() <= OciJson.MAX_MESSAGE + 3, shown + ": " + e.getMessage());
            assertFalse(e.getMessage().contains("JsonReader") || e.getMessage().contains("LENIENT"),
                    "no advice to a programmer: " + e.getMessage());
        }
        assertTrue(assertThrows(JsonException.class, () -> OciJson.parse("{\"a\":[1,\n2,]}")).getMessage()
                .contains("line 2 column"), "says where");
        assertEquals("malformed JSON at line 1 column 6 path $", assertThrows(JsonException.class, () -> OciJson.parse("[1] x"))
                .getMessage());
    }
}
