package org.krun.vmm.internal.bus;

/**
 * A device on the port-I/O or MMIO bus. Offsets are relative to the device's base; accesses are 1, 2,
 * 4 or 8 bytes, values little-endian in a long. Called from vCPU threads, possibly concurrently.
 */
public interface BusDevice {

    long read(long offset, int size);

    void write(long offset, int size, long value);
}
