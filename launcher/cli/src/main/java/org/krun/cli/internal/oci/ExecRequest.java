package org.krun.cli.internal.oci;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

import org.krun.api.GuestUser;
import org.krun.cli.internal.oci.OciSpec.OciException;

/**
 * One process to run in a running container, as {@code exec --process FILE} describes it (the runtime spec's
 * {@code process} object: args, env, cwd, user, terminal, consoleSize) or as exec's options do; encoded as the
 * exec agent's EXEC request (guest/init/exec.c). Capabilities, rlimits, apparmor and the like are the VM's
 * business, as for the container's own process, and are not passed on.
 */
record ExecRequest(List<String> args, List<String> env, String cwd, GuestUser user, boolean terminal, int columns,
        int rows) {

    /** The agent's bounds: arguments and environment entries each, and the size of the whole request. */
    static final int MAX_ITEMS = 4096;

    ExecRequest {
        args = List.copyOf(args);
        env = List.copyOf(env);
        if (args.isEmpty() || args.get(0).isEmpty()) {
            throw new OciException("exec: no command to run");
        }
        if (args.size() > MAX_ITEMS || env.size() > MAX_ITEMS) {
            throw new OciException("exec: more than " + MAX_ITEMS + " arguments or environment variables");
        }
        if (!cwd.startsWith("/")) {
            throw new OciException("exec: the working directory '" + cwd + "' is not an absolute path");
        }
        for (String s : args) {
            noNul(s, "an argument");
        }
        for (String e : env) {
            noNul(e, "an environment variable");
            if (e.indexOf('=') <= 0) {
                throw new OciException("exec: environment entry '" + e + "' is not NAME=VALUE");
            }
        }
        noNul(cwd, "the working directory");
        if (columns < 0 || columns > 0xffff || rows < 0 || rows > 0xffff) {
            throw new OciException("exec: a terminal of " + columns + "x" + rows + " characters");
        }
    }

    private static void noNul(String s, String what) {
        if (s.indexOf('\0') >= 0) {
            throw new OciException("exec: " + what + " holds a NUL character");
        }
    }

    /** Reads a process.json (runtime spec {@code process}), as engines hand it to {@code exec --process}. */
    static ExecRequest load(Path file) {
        String text;
        try {
            if (Files.size(file) > ExecProtocol.MAX_REQUEST * 4L) {
                throw new OciException("exec: " + file + " is too large");
            }
            text = Files.readString(file);
        } catch (IOException e) {
            throw new OciException("exec: cannot read " + file + ": " + e.getMessage());
        }
        try {
            return fromProcess(OciJson.parse(text));
        } catch (OciJson.JsonException e) {
            throw new OciException("exec: " + file + " is not JSON: " + e.getMessage());
        }
    }

    static ExecRequest fromProcess(Object json) {
        Map<String, Object> p = OciSpec.object(json, "process");
        if (p == null) {
            throw new OciException("exec: the process is empty");
        }
        List<String> args = OciSpec.strings(p.get("args"), "process.args");
        List<String> env = OciSpec.strings(p.get("env"), "process.env");
        String cwd = p.get("cwd") instanceof String s && !s.isEmpty() ? s : "/";
        GuestUser user = OciSpec.user(OciSpec.object(p.get("user"), "process.user"));
        boolean terminal = Boolean.TRUE.equals(p.get("terminal"));
        int columns = 0;
        int rows = 0;
        Map<String, Object> size = OciSpec.object(p.get("consoleSize"), "process.consoleSize");
        if (size != null && size.get("width") instanceof Long w && size.get("height") instanceof Long h
                && w >= 0 && w <= 0xffff && h >= 0 && h <= 0xffff) {
            columns = w.intValue();
            rows = h.intValue();
        }
        return new ExecRequest(args, env, cwd, user == null ? new GuestUser(0, 0) : user, terminal, columns, rows);
    }

    /** The EXEC request's payload: the fixed header, the group ids, then cwd, args and env, NUL-terminated. */
    byte[] encode() {
        ByteArrayOutputStream strings = new ByteArrayOutputStream();
        List<String> all = new ArrayList<>();
        all.add(cwd);
        all.addAll(args);
        all.addAll(env);
        for (String s : all) {
            strings.writeBytes(s.getBytes(StandardCharsets.UTF_8));
            strings.write(0);
            if (strings.size() > ExecProtocol.MAX_REQUEST) {
                throw new OciException("exec: the command and its environment exceed " + (ExecProtocol.MAX_REQUEST >> 10) + " KiB");
            }
        }
        int header = 22 + 4 * user.groups().size();
        if (header + strings.size() > ExecProtocol.MAX_REQUEST) {
            throw new OciException("exec: the command and its environment exceed " + (ExecProtocol.MAX_REQUEST >> 10) + " KiB");
        }
        ByteBuffer b = ByteBuffer.allocate(header + strings.size());
        b.putInt(terminal ? 1 : 0).putInt((int) user.uid()).putInt((int) user.gid());
        b.putShort((short) columns).putShort((short) rows);
        b.putShort((short) user.groups().size()).putShort((short) args.size()).putShort((short) env.size());
        for (long g : user.groups()) {
            b.putInt((int) g);
        }
        b.put(strings.toByteArray());
        return b.array();
    }
}
