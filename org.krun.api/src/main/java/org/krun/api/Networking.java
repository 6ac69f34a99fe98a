package org.krun.api;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * A VM's networking from the words users type, the same for {@code krun run}'s options and a configured VM's
 * properties: network modes and cards ({@code tsi}, {@code tsi,unix}, {@code none}, or cards as
 * {@link NetSpec#parse}), vsock port maps ({@link VsockPort#parse}) and published ports
 * ({@link PortForward#parse}). One vsock device carries port maps and socket impersonation; each card is a
 * device of its own. Without any of them a VM gets the vsock device's default (impersonation of inet
 * sockets, unix ones too for a root of /); {@code none} goes without it. With a card, impersonation is off
 * unless {@code tsi} asks for it too (as libkrun), and published ports go to the first passt card.
 *
 * @since 1.1
 */
public final class Networking {

    /** How errors name each setting: {@link #OPTIONS} for the command line, {@link #PROPERTIES} for configuration. */
    public record Names(String net, String vsock, String publish) {
    }

    /** {@code --net}, {@code --vsock}, {@code -p}. */
    public static final Names OPTIONS = new Names("--net", "--vsock", "-p");

    /** The properties {@code net}, {@code vsock} and {@code publish}. */
    public static final Names PROPERTIES = new Names("property net", "property vsock", "property publish");

    private Networking() {
    }

    /**
     * Adds the devices (or leaves out the default device) that {@code net}, {@code vsock} and {@code publish}
     * ask for.
     *
     * @param root the guest's root, if any: a root of / impersonates unix sockets too by default
     * @throws VmConfigException with one line naming the setting at fault
     */
    public static void apply(VmConfig.Builder b, List<String> net, List<String> vsock, List<String> publish,
            Optional<Path> root, Names names) {
        String mode = null;
        List<NetSpec> cards = new ArrayList<>();
        for (String n : net) {
            if (n.equals("tsi") || n.equals("tsi,unix") || n.equals("none")) {
                if (mode != null && !mode.equals(n)) {
                    throw new VmConfigException(names.net() + " " + mode + " and " + names.net() + " " + n
                            + " contradict each other");
                }
                mode = n;
                continue;
            }
            try {
                NetSpec card = NetSpec.parse(n);
                cards.add(card.mac().isPresent() ? card : card.withMac(NetSpec.defaultMac(cards.size())));
            } catch (VmConfigException e) {
                throw new VmConfigException(names.net() + " " + n + ": " + e.getMessage()
                        + (n.contains("=") || n.equals("passt") ? "" : " (or the modes tsi, tsi,unix and none)"));
            }
        }
        if ("none".equals(mode) && !cards.isEmpty()) {
            throw new VmConfigException(names.net() + " none and a network card contradict each other");
        }
        boolean explicit = mode != null;
        VsockSpec.Tsi tsi;
        if (mode == null) {
            // as the vsock device's default for this VM (its factory's defaultSpec): none with a card
            tsi = !cards.isEmpty() ? VsockSpec.Tsi.OFF
                    : root.map(r -> r.toAbsolutePath().normalize().equals(Path.of("/"))).orElse(false)
                            ? VsockSpec.Tsi.INET_AND_UNIX : VsockSpec.Tsi.INET;
        } else {
            tsi = switch (mode) {
                case "tsi" -> VsockSpec.Tsi.INET;
                case "tsi,unix" -> VsockSpec.Tsi.INET_AND_UNIX;
                default -> VsockSpec.Tsi.OFF;
            };
        }
        VsockSpec device = VsockSpec.create().withTsi(tsi);
        for (String v : vsock) {
            try {
                device = device.withPort(VsockPort.parse(v));
            } catch (VmConfigException e) {
                throw new VmConfigException(names.vsock() + " " + v + ": " + e.getMessage());
            }
        }
        int passt = -1;
        for (int i = 0; i < cards.size() && passt < 0; i++) {
            passt = cards.get(i).backend() == NetSpec.Backend.PASST ? i : -1;
        }
        for (String p : publish) {
            PortForward forward;
            try {
                forward = PortForward.parse(p);
            } catch (VmConfigException e) {
                throw names == OPTIONS ? e : new VmConfigException(names.publish() + " " + p + ": " + e.getMessage());
            }
            if (passt >= 0) {
                try {
                    cards.set(passt, cards.get(passt).withPublished(forward));
                } catch (VmConfigException e) {
                    throw new VmConfigException(names.publish() + " " + p + ": " + e.getMessage());
                }
            } else if (tsi == VsockSpec.Tsi.OFF) {
                throw new VmConfigException(names.publish() + " " + p + ": publishing a port needs " + names.net()
                        + " passt or tsi" + (cards.isEmpty() ? ", and " + names.net() + " is none"
                                : "; the peer of a " + cards.get(0).describe() + " card does its own forwarding"));
            } else {
                device = device.withPublished(forward);
            }
        }
        cards.forEach(b::device);
        boolean vsockPublished = passt < 0 && !publish.isEmpty();
        if (!vsock.isEmpty() || vsockPublished || explicit && tsi != VsockSpec.Tsi.OFF) {
            b.device(device);
        } else if (tsi == VsockSpec.Tsi.OFF && cards.isEmpty()) {
            b.withoutDefault(VsockSpec.TYPE);
        }
    }
}
