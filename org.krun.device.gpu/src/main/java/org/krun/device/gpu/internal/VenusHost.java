package org.krun.device.gpu.internal;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;

/**
 * What the host needs for {@code --gpu venus} besides virglrenderer, checked before the renderer starts so
 * that a missing piece is one line rather than a guest whose Vulkan finds no device: virglrenderer's render
 * server ({@link Virgl#RENDER_SERVER_PATH}, Debian's virgl-server), the Vulkan loader
 * ({@code libvulkan.so.1}) and at least one Vulkan driver manifest (an ICD: Mesa's lavapipe without a GPU,
 * from mesa-vulkan-drivers). The driver itself is loaded only in the render server, never in the VMM.
 */
final class VenusHost {

    static final String VULKAN_LOADER = "libvulkan.so.1";
    /** Where the Vulkan loader looks for driver manifests when the environment names none (Linux). */
    static final List<Path> ICD_FOLDERS = List.of(Path.of("/usr/share/vulkan/icd.d"), Path.of("/etc/vulkan/icd.d"),
            Path.of("/usr/local/share/vulkan/icd.d"));

    private VenusHost() {
    }

    /** Why Venus cannot run on this host (one line), or null when it can. */
    static String problem() {
        return problem(Path.of(Virgl.RENDER_SERVER_PATH), ICD_FOLDERS, System.getenv());
    }

    static String problem(Path renderServer, List<Path> icdFolders, Map<String, String> env) {
        if (!Files.isExecutable(renderServer)) {
            return "--gpu venus needs virglrenderer's render server (" + renderServer + "), which is not installed: apt-get install "
                    + Virgl.RENDER_SERVER_PACKAGE;
        }
        try (Arena arena = Arena.ofConfined()) {
            SymbolLookup.libraryLookup(VULKAN_LOADER, arena);
        } catch (IllegalArgumentException e) {
            return "--gpu venus needs the Vulkan loader (" + VULKAN_LOADER + "), which is not installed: apt-get install libvulkan1";
        }
        List<Path> manifests = manifests(icdFolders, env);
        if (manifests.isEmpty()) {
            return "--gpu venus needs a Vulkan driver on the host (no driver manifest in " + (named(env) != null
                    ? "VK_DRIVER_FILES/VK_ICD_FILENAMES" : icdFolders.get(0).toString())
                    + "): apt-get install mesa-vulkan-drivers";
        }
        return null;
    }

    /** The environment's own list of driver manifests (colon-separated files), or null. */
    private static String named(Map<String, String> env) {
        for (String key : new String[] {"VK_DRIVER_FILES", "VK_ICD_FILENAMES"}) {
            String v = env.get(key);
            if (v != null && !v.isBlank()) {
                return v;
            }
        }
        return null;
    }

    /** The driver manifests the loader would read: the environment's, or the JSON files in the folders. */
    static List<Path> manifests(List<Path> icdFolders, Map<String, String> env) {
        List<Path> out = new ArrayList<>();
        String named = named(env);
        if (named != null) {
            for (String f : named.split(":")) {
                Path p = Path.of(f.strip());
                if (!f.isBlank() && (Files.isRegularFile(p) || Files.isDirectory(p))) {
                    out.add(p);
                }
            }
            return out;
        }
        for (Path folder : icdFolders) {
            if (!Files.isDirectory(folder)) {
                continue;
            }
            try (Stream<Path> files = Files.list(folder)) {
                files.filter(p -> p.getFileName().toString().endsWith(".json") && Files.isRegularFile(p)).sorted().forEach(out::add);
            } catch (IOException e) {
                // an unreadable folder holds no driver the loader could use either
            }
        }
        return out;
    }
}
