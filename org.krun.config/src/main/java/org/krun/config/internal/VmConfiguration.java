package org.krun.config.internal;

/**
 * The properties of one {@value ConfiguredVm#FACTORY_PID} factory configuration: one VM. Property names
 * are the method names. Lists ({@code command}, {@code env}, {@code kernelArgs}, {@code net}, {@code vsock}, {@code publish}) may be string arrays,
 * string collections, or a single string for a one-element list.
 */
@interface VmConfiguration {

    /** Number of vCPUs. */
    int cpus() default 1;

    /** Guest memory in MiB. */
    int memoryMib() default 512;

    /** The guest kernel; empty for the framework property {@code krun.kernel}. */
    String kernel() default "";

    /** An initramfs to put under the root; empty for none. */
    String initrd() default "";

    /**
     * A host directory that becomes the guest's root; empty for the framework property {@code krun.rootfs}
     * when the default kernel is used, and for no root otherwise.
     */
    String root() default "";

    /** The command and its arguments (required). */
    String[] command() default {};

    /** Environment variables as {@code NAME=VALUE}. */
    String[] env() default {};

    /** The command's working directory in the guest. */
    String workdir() default "/";

    /** The guest's host name; empty for krun's default. */
    String hostname() default "";

    /** Extra kernel command-line arguments. */
    String[] kernelArgs() default {};

    /** Kill the VM after this many seconds; 0 for never. */
    long timeoutSeconds() default 0;

    /**
     * Networking, as {@code krun run --net}: {@code tsi}, {@code tsi,unix}, {@code none}, or network cards
     * ({@code passt}, {@code unixstream=PATH}, {@code unixgram=PATH[,vfkit]}, {@code tap=NAME}, with options);
     * empty for the default (socket impersonation).
     */
    String[] net() default {};

    /** Vsock port maps, as {@code krun run --vsock}: {@code PORT:PATH[,listen]}. */
    String[] vsock() default {};

    /** Published guest ports, as {@code krun run -p}: {@code HOST:GUEST[/udp]}. */
    String[] publish() default {};

    /**
     * A sound card, as {@code krun run --sound}: {@code null} or {@code wav:FILE}, with {@code ,capture=FILE};
     * empty for none.
     */
    String sound() default "";

    /**
     * A virtio GPU, as {@code krun run --gpu}: {@code 2d|virgl|venus[,size=WxH][,scanouts=N][,memory=MIB]}; empty for
     * none.
     * The VM's scanouts are then on its {@code VirtualMachine.displays()} (the shell's {@code krun:screenshot}).
     */
    String gpu() default "";

    /** Whether the VM gets the devices that device bundles offer every VM. */
    boolean defaultDevices() default true;

    /** Whether the kernel's messages go to the output. */
    boolean kernelLog() default false;

    /**
     * A host file the command's standard output and error (and the console) are appended to; empty to keep
     * only the VM's console tail (the shell's {@code krun:console}).
     */
    String output() default "";
}
