package org.krun.device.snd.internal;

/**
 * virtio-snd's wire constants (virtio 1.2 §5.14; Linux {@code include/uapi/linux/virtio_snd.h} names
 * them the same way): queues, request and status codes, sample formats and frame rates, and the sizes of
 * the structures this device reads and writes. Every structure is little-endian.
 */
final class Snd {

    private Snd() {
    }

    // §5.14.2 virtqueues
    static final int CONTROLQ = 0;
    static final int EVENTQ = 1;
    static final int TXQ = 2;
    static final int RXQ = 3;
    static final int QUEUE_COUNT = 4;

    // §5.14.6.1 request codes
    static final int R_JACK_INFO = 1;
    static final int R_JACK_REMAP = 2;
    static final int R_PCM_INFO = 0x0100;
    static final int R_PCM_SET_PARAMS = 0x0101;
    static final int R_PCM_PREPARE = 0x0102;
    static final int R_PCM_RELEASE = 0x0103;
    static final int R_PCM_START = 0x0104;
    static final int R_PCM_STOP = 0x0105;
    static final int R_CHMAP_INFO = 0x0200;

    // status codes
    static final int S_OK = 0x8000;
    static final int S_BAD_MSG = 0x8001;
    static final int S_NOT_SUPP = 0x8002;
    static final int S_IO_ERR = 0x8003;

    // §5.14.6.6 directions
    static final int D_OUTPUT = 0;
    static final int D_INPUT = 1;

    // §5.14.6.6.2 sample formats (bit numbers of virtio_snd_pcm_info.formats)
    static final int FMT_U8 = 4;
    static final int FMT_S16 = 5;
    static final int FMT_S32 = 17;
    static final int FMT_FLOAT = 19;

    // frame rates (bit numbers of virtio_snd_pcm_info.rates), indexed by code
    static final int[] RATES_HZ = {5512, 8000, 11025, 16000, 22050, 32000, 44100, 48000, 64000, 88200, 96000,
        176400, 192000, 384000};

    // §5.14.6.4 channel positions
    static final int CHMAP_MONO = 2;
    static final int CHMAP_FL = 3;
    static final int CHMAP_FR = 4;
    static final int CHMAP_MAX_SIZE = 18;

    // structure sizes
    /** struct virtio_snd_hdr: le32 code. */
    static final int HDR_SIZE = 4;
    /** struct virtio_snd_query_info: hdr, start_id, count, size. */
    static final int QUERY_INFO_SIZE = 16;
    /** struct virtio_snd_jack_info: hdr (hda_fn_nid), features, hda_reg_defconf, hda_reg_caps, connected, padding[7]. */
    static final int JACK_INFO_SIZE = 24;
    /** struct virtio_snd_jack_remap: jack_hdr (code, jack_id), association, sequence. */
    static final int JACK_REMAP_SIZE = 16;
    /** struct virtio_snd_pcm_info: hdr, features, formats, rates, direction, channels_min, channels_max, padding[5]. */
    static final int PCM_INFO_SIZE = 32;
    /** struct virtio_snd_pcm_hdr: code, stream_id. */
    static final int PCM_HDR_SIZE = 8;
    /** struct virtio_snd_pcm_set_params: pcm_hdr, buffer_bytes, period_bytes, features, channels, format, rate, padding. */
    static final int PCM_SET_PARAMS_SIZE = 24;
    /** struct virtio_snd_chmap_info: hdr, direction, channels, positions[18]. */
    static final int CHMAP_INFO_SIZE = 24;
    /** struct virtio_snd_pcm_xfer: le32 stream_id, at the head of every tx and rx message. */
    static final int PCM_XFER_SIZE = 4;
    /** struct virtio_snd_pcm_status: le32 status, le32 latency_bytes, at the end of every tx and rx message. */
    static final int PCM_STATUS_SIZE = 8;
    /** struct virtio_snd_config: jacks, streams, chmaps, controls. */
    static final int CONFIG_SIZE = 16;

    /** A request code's name for logs. */
    static String codeName(int code) {
        return switch (code) {
            case R_JACK_INFO -> "JACK_INFO";
            case R_JACK_REMAP -> "JACK_REMAP";
            case R_PCM_INFO -> "PCM_INFO";
            case R_PCM_SET_PARAMS -> "PCM_SET_PARAMS";
            case R_PCM_PREPARE -> "PCM_PREPARE";
            case R_PCM_RELEASE -> "PCM_RELEASE";
            case R_PCM_START -> "PCM_START";
            case R_PCM_STOP -> "PCM_STOP";
            case R_CHMAP_INFO -> "CHMAP_INFO";
            default -> "0x" + Integer.toHexString(code);
        };
    }
}
