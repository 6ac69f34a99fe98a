package org.krun.device.gpu.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.nio.file.attribute.PosixFilePermissions;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class VenusHostTest {

    @Test
    void aMissingRenderServerOrVulkanDriverIsOneLineNamingThePackage(@TempDir Path dir) throws Exception {
        Path server = dir.resolve("virgl_render_server");
        Path icd = Files.createDirectories(dir.resolve("icd.d"));
        String noServer = VenusHost.problem(server, List.of(icd), Map.of());
        assertTrue(noServer.contains("apt-get install virgl-server") && !noServer.contains("\n"), noServer);

        Files.writeString(server, "");
        Files.setPosixFilePermissions(server, PosixFilePermissions.fromString("rwxr-xr-x"));
        String noDriver = VenusHost.problem(server, List.of(icd), Map.of());
        if (noDriver.contains("libvulkan1")) {
            return; // this host has no Vulkan loader: that is the first thing said
        }
        assertTrue(noDriver.contains("apt-get install mesa-vulkan-drivers") && !noDriver.contains("\n"), noDriver);

        Files.writeString(icd.resolve("lvp_icd.x86_64.json"), "{}");
        Files.writeString(icd.resolve("notes.txt"), "");
        assertNull(VenusHost.problem(server, List.of(icd), Map.of()));
        assertEquals(List.of(icd.resolve("lvp_icd.x86_64.json")), VenusHost.manifests(List.of(icd), Map.of()));

        // the environment's own list wins, and a file it names must exist
        String named = VenusHost.problem(server, List.of(icd), Map.of("VK_ICD_FILENAMES", dir.resolve("none.json").toString()));
        assertTrue(named.contains("VK_DRIVER_FILES/VK_ICD_FILENAMES"), named);
        assertNull(VenusHost.problem(server, List.of(icd), Map.of("VK_DRIVER_FILES", icd.resolve("lvp_icd.x86_64.json").toString())));
        assertTrue(Set.of(List.of()).contains(VenusHost.manifests(List.of(dir.resolve("absent")), Map.of())));
    }
}
