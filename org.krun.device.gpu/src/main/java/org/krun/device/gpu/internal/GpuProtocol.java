package org.krun.device.gpu.internal;

/** The wire constants of virtio-gpu (virtio 1.2 §5.7.6, linux/virtio_gpu.h). */
final class GpuProtocol {

    // §5.7.3 feature bits
    static final long F_VIRGL = 1L << 0;
    static final long F_EDID = 1L << 1;
    static final long F_RESOURCE_BLOB = 1L << 3;
    /** VIRTIO_GPU_F_CONTEXT_INIT: CTX_CREATE names the capset the context speaks (context_init). */
    static final long F_CONTEXT_INIT = 1L << 4;

    // §5.7.4 configuration layout: le32 events_read, events_clear, num_scanouts, num_capsets
    static final int CONFIG_EVENTS_READ = 0;
    static final int CONFIG_EVENTS_CLEAR = 4;
    static final int CONFIG_NUM_SCANOUTS = 8;
    static final int CONFIG_NUM_CAPSETS = 12;
    static final int CONFIG_SIZE = 16;
    static final int EVENT_DISPLAY = 1 << 0;

    // §5.7.6.7 control queue commands
    static final int CMD_GET_DISPLAY_INFO = 0x0100;
    static final int CMD_RESOURCE_CREATE_2D = 0x0101;
    static final int CMD_RESOURCE_UNREF = 0x0102;
    static final int CMD_SET_SCANOUT = 0x0103;
    static final int CMD_RESOURCE_FLUSH = 0x0104;
    static final int CMD_TRANSFER_TO_HOST_2D = 0x0105;
    static final int CMD_RESOURCE_ATTACH_BACKING = 0x0106;
    static final int CMD_RESOURCE_DETACH_BACKING = 0x0107;
    static final int CMD_GET_CAPSET_INFO = 0x0108;
    static final int CMD_GET_CAPSET = 0x0109;
    static final int CMD_GET_EDID = 0x010a;
    static final int CMD_RESOURCE_ASSIGN_UUID = 0x010b;
    static final int CMD_RESOURCE_CREATE_BLOB = 0x010c;
    static final int CMD_SET_SCANOUT_BLOB = 0x010d;
    // 3D commands (VIRTIO_GPU_F_VIRGL)
    static final int CMD_CTX_CREATE = 0x0200;
    static final int CMD_CTX_DESTROY = 0x0201;
    static final int CMD_CTX_ATTACH_RESOURCE = 0x0202;
    static final int CMD_CTX_DETACH_RESOURCE = 0x0203;
    static final int CMD_RESOURCE_CREATE_3D = 0x0204;
    static final int CMD_TRANSFER_TO_HOST_3D = 0x0205;
    static final int CMD_TRANSFER_FROM_HOST_3D = 0x0206;
    static final int CMD_SUBMIT_3D = 0x0207;
    static final int CMD_RESOURCE_MAP_BLOB = 0x0208;
    static final int CMD_RESOURCE_UNMAP_BLOB = 0x0209;
    // cursor queue commands
    static final int CMD_UPDATE_CURSOR = 0x0300;
    static final int CMD_MOVE_CURSOR = 0x0301;

    // responses
    static final int RESP_OK_NODATA = 0x1100;
    static final int RESP_OK_DISPLAY_INFO = 0x1101;
    static final int RESP_OK_CAPSET_INFO = 0x1102;
    static final int RESP_OK_CAPSET = 0x1103;
    static final int RESP_OK_EDID = 0x1104;
    static final int RESP_OK_MAP_INFO = 0x1106;
    static final int RESP_ERR_UNSPEC = 0x1200;
    static final int RESP_ERR_OUT_OF_MEMORY = 0x1201;
    static final int RESP_ERR_INVALID_SCANOUT_ID = 0x1202;
    static final int RESP_ERR_INVALID_RESOURCE_ID = 0x1203;
    static final int RESP_ERR_INVALID_CONTEXT_ID = 0x1204;
    static final int RESP_ERR_INVALID_PARAMETER = 0x1205;

    // struct virtio_gpu_ctrl_hdr flags
    static final int FLAG_FENCE = 1 << 0;
    static final int FLAG_INFO_RING_IDX = 1 << 1;

    // §5.7.6.7 blob resources: blob_mem, blob_flags, and the map_info of RESP_OK_MAP_INFO
    static final int BLOB_MEM_GUEST = 1;
    static final int BLOB_MEM_HOST3D = 2;
    static final int BLOB_MEM_HOST3D_GUEST = 3;
    static final int BLOB_FLAG_USE_MAPPABLE = 1;
    static final int BLOB_FLAG_USE_SHAREABLE = 2;
    static final int BLOB_FLAG_USE_CROSS_DEVICE = 4;
    static final int MAP_CACHE_MASK = 0x0f;
    /** VIRTIO_GPU_SHM_ID_HOST_VISIBLE: the shared memory region host3d blobs are mapped into. */
    static final int SHM_ID_HOST_VISIBLE = 1;

    // §5.7.6.7 capability sets (VIRTIO_GPU_CAPSET_*)
    static final int CAPSET_VIRGL = 1;
    static final int CAPSET_VIRGL2 = 2;
    static final int CAPSET_VENUS = 4;

    /** The debug name of CTX_CREATE: char debug_name[64]. */
    static final int CTX_NAME_SIZE = 64;

    /** sizeof(struct virtio_gpu_ctrl_hdr): le32 type, le32 flags, le64 fence_id, le32 ctx_id, u8 ring_idx, u8 padding[3]. */
    static final int HDR_SIZE = 24;
    /** sizeof(struct virtio_gpu_mem_entry): le64 addr, le32 length, le32 padding. */
    static final int MEM_ENTRY_SIZE = 16;
    /** VIRTIO_GPU_MAX_SCANOUTS: the display info response always has this many pmodes. */
    static final int MAX_SCANOUTS = 16;
    /** The EDID blob of RESP_OK_EDID is this long (le32 size, le32 padding, u8 edid[1024]). */
    static final int EDID_BLOB_SIZE = 1024;

    private GpuProtocol() {
    }
}
