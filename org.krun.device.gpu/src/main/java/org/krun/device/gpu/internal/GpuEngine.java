package org.krun.device.gpu.internal;

/**
 * What one activation of the device executes with: {@link Gpu2d} (resources in host memory) or
 * {@link Gpu3d} (resources in virglrenderer). {@link #close} frees what the activation holds.
 */
sealed interface GpuEngine extends AutoCloseable permits Gpu2d, Gpu3d {

    @Override
    void close();
}
