package org.krun.cli.internal;

import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * One row of {@code bad-inputs.txt} (beside this class): a mistake a user can make on krun's command line, who
 * refuses it, the exit status and a word of the one-line error. Shared with launcher/boot's tests through this
 * module's test jar.
 *
 * @param where {@code cli}, {@code core}, {@code launcher} or {@code script}
 * @param status the exit status krun must end with
 * @param redirect a shell redirection of krun's standard streams ({@code >&-}), empty for none
 * @param mention what the error line must contain, empty when krun has no stderr to write to
 * @param args krun's arguments
 */
public record BadInput(String where, int status, String redirect, String mention, List<String> args) {

    public static final String RESOURCE = "bad-inputs.txt";
    private static final Pattern WORD = Pattern.compile("'([^']*)'|(\\S+)");

    /** Every row of the table. */
    public static List<BadInput> all() {
        try (InputStream in = BadInput.class.getResourceAsStream(RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(RESOURCE + " is missing beside " + BadInput.class.getName());
            }
            List<BadInput> rows = new ArrayList<>();
            for (String line : new String(in.readAllBytes(), StandardCharsets.UTF_8).lines().toList()) {
                if (!line.isBlank() && !line.startsWith("#")) {
                    rows.add(parse(line));
                }
            }
            return rows;
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + RESOURCE, e);
        }
    }

    static BadInput parse(String line) {
        List<String> words = new ArrayList<>();
        Matcher m = WORD.matcher(line);
        while (m.find()) {
            words.add(m.group(1) != null ? m.group(1) : m.group(2));
        }
        if (words.size() < 4) {
            throw new IllegalArgumentException("not WHERE STATUS REDIRECT MENTION ARGS...: " + line);
        }
        return new BadInput(words.get(0), Integer.parseInt(words.get(1)), words.get(2).equals("-") ? "" : words.get(2),
                words.get(3), List.copyOf(words.subList(4, words.size())));
    }

    /** This row with every {@code {name}} in its arguments, redirect and mention replaced by {@code values}. */
    public BadInput with(Map<String, String> values) {
        return new BadInput(where, status, fill(redirect, values), fill(mention, values),
                args.stream().map(a -> fill(a, values)).toList());
    }

    private static String fill(String s, Map<String, String> values) {
        for (Map.Entry<String, String> v : values.entrySet()) {
            s = s.replace("{" + v.getKey() + "}", v.getValue());
        }
        return s;
    }

    /** The row as a user types it: {@code krun ARGS REDIRECT}, quoted where a shell needs it. */
    public String commandLine() {
        StringBuilder b = new StringBuilder("krun");
        for (String a : args) {
            b.append(' ').append(a.isEmpty() || !a.matches("[\\w@%+=:,./{}-]+") ? "'" + a + "'" : a);
        }
        if (!redirect.isEmpty()) {
            b.append(' ').append(redirect);
        }
        return b.toString();
    }

    @Override
    public String toString() {
        return commandLine();
    }
}
