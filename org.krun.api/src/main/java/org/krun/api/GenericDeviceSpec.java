package org.krun.api;

import java.util.Map;

/**
 * A device request for device types this API has no dedicated record for (third-party device
 * bundles): the type and string options, interpreted by that type's factory.
 */
public record GenericDeviceSpec(String type, Map<String, String> options) implements DeviceSpec {

    public GenericDeviceSpec {
        if (type == null || type.isBlank()) {
            throw new IllegalArgumentException("device type is empty");
        }
        options = Map.copyOf(options);
    }
}
