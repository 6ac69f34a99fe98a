package org.krun.launcher;

import java.io.IOException;
import java.io.Reader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * What a profile's bndrun file says about itself: {@code krun.description}; {@code krun.missing}, the
 * bundles a variant needs that this build does not have yet ({@code bsn;reason="..."}, comma separated);
 * and {@code krun.protection}, what the variant promises its VMs (memory encryption, an enclave), which
 * it cannot give while a bundle is missing. bndrun files are java.util.Properties syntax, so they are read
 * as such.
 */
record Profile(String name, String description, List<Missing> missing, String protection) {

    /**
     * Why this profile's VMs would run without the protection it promises, or null when they would not
     * (it promises none, or has every bundle it needs).
     */
    String unprotected() {
        if (protection.isEmpty() || missing.isEmpty()) {
            return null;
        }
        return "profile '" + name + "' cannot give its VMs " + protection + " (bundle " + missing.getFirst().bundle()
                + " is missing)";
    }

    /** A bundle the profile lacks and what that means for the user. */
    record Missing(String bundle, String reason) {
    }

    private static final Pattern ENTRY = Pattern.compile("\\s*([\\w.]+)\\s*(?:;\\s*reason\\s*=\\s*\"([^\"]*)\")?\\s*(?:,|$)");

    static Profile read(Path exportDir, String name) {
        Path file = exportDir.resolve(name + ".bndrun");
        Properties p = new Properties();
        if (Files.isRegularFile(file)) {
            try (Reader r = Files.newBufferedReader(file)) {
                p.load(r);
            } catch (IOException e) {
                // a profile without its description still runs
            }
        }
        return new Profile(name, p.getProperty("krun.description", ""), parseMissing(p.getProperty("krun.missing", "")),
                p.getProperty("krun.protection", "").trim());
    }

    static List<Missing> parseMissing(String value) {
        List<Missing> out = new ArrayList<>();
        Matcher m = ENTRY.matcher(value);
        int at = 0;
        while (at < value.length() && m.find(at) && m.start() == at) {
            if (!m.group(1).isEmpty()) {
                out.add(new Missing(m.group(1), m.group(2) == null ? "not available in this build" : m.group(2)));
            }
            at = m.end();
        }
        return out;
    }
}
