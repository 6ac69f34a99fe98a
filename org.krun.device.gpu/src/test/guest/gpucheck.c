/*
 * gpucheck: draws known pictures through Linux's virtio-gpu DRM driver, for the host to compare pixel for
 * pixel. Uses the kernel's mode-setting ioctls directly (no libdrm); the structures below mirror
 * include/uapi/drm/drm.h and drm_mode.h of Linux 6.12.
 *
 *   gpucheck WIDTH HEIGHT [FRAMES]
 *
 * 1. Opens /dev/dri/card0, checks the driver is virtio_gpu, finds a connected connector whose preferred
 *    mode is WIDTHxHEIGHT (what the host's EDID and display info say) and a CRTC.
 * 2. Creates a dumb buffer, maps it, fills it with pattern(x, y, 0) and shows it (SETCRTC): the host
 *    receives TRANSFER_TO_HOST_2D, SET_SCANOUT and RESOURCE_FLUSH.
 * 3. Redraws the rectangle [W/4, W/4 + W/2) x [H/4, H/4 + H/3) with pattern(x, y, 77) and reports it
 *    with DIRTYFB and one clip: the host receives a partial transfer and flush.
 * 4. With FRAMES (bench/gpu): FRAMES full-screen updates (redraw, DIRTYFB of the whole screen), timed with
 *    CLOCK_MONOTONIC ("frames N in S s: F per second"), then the picture of step 3 again.
 * One line per check ("ok ..." or "FAIL ..."); exit status 0 only if all passed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

struct drm_version {
    int version_major, version_minor, version_patchlevel;
    size_t name_len;
    char *name;
    size_t date_len;
    char *date;
    size_t desc_len;
    char *desc;
};

struct drm_mode_modeinfo {
    uint32_t clock;
    uint16_t hdisplay, hsync_start, hsync_end, htotal, hskew;
    uint16_t vdisplay, vsync_start, vsync_end, vtotal, vscan;
    uint32_t vrefresh;
    uint32_t flags;
    uint32_t type;
    char name[32];
};

struct drm_mode_card_res {
    uint64_t fb_id_ptr, crtc_id_ptr, connector_id_ptr, encoder_id_ptr;
    uint32_t count_fbs, count_crtcs, count_connectors, count_encoders;
    uint32_t min_width, max_width, min_height, max_height;
};

struct drm_mode_get_connector {
    uint64_t encoders_ptr, modes_ptr, props_ptr, prop_values_ptr;
    uint32_t count_modes, count_props, count_encoders;
    uint32_t encoder_id, connector_id, connector_type, connector_type_id;
    uint32_t connection, mm_width, mm_height, subpixel;
    uint32_t pad;
};

struct drm_mode_crtc {
    uint64_t set_connectors_ptr;
    uint32_t count_connectors;
    uint32_t crtc_id, fb_id, x, y, gamma_size, mode_valid;
    struct drm_mode_modeinfo mode;
};

struct drm_mode_fb_cmd {
    uint32_t fb_id, width, height, pitch, bpp, depth, handle;
};

struct drm_clip_rect {
    unsigned short x1, y1, x2, y2;
};

struct drm_mode_fb_dirty_cmd {
    uint32_t fb_id, flags, color, num_clips;
    uint64_t clips_ptr;
};

struct drm_mode_create_dumb {
    uint32_t height, width, bpp, flags, handle, pitch;
    uint64_t size;
};

struct drm_mode_map_dumb {
    uint32_t handle, pad;
    uint64_t offset;
};

#define DRM_IOCTL_VERSION _IOWR('d', 0x00, struct drm_version)
#define DRM_IOCTL_MODE_GETRESOURCES _IOWR('d', 0xA0, struct drm_mode_card_res)
#define DRM_IOCTL_MODE_SETCRTC _IOWR('d', 0xA2, struct drm_mode_crtc)
#define DRM_IOCTL_MODE_GETCONNECTOR _IOWR('d', 0xA7, struct drm_mode_get_connector)
#define DRM_IOCTL_MODE_ADDFB _IOWR('d', 0xAE, struct drm_mode_fb_cmd)
#define DRM_IOCTL_MODE_DIRTYFB _IOWR('d', 0xB1, struct drm_mode_fb_dirty_cmd)
#define DRM_IOCTL_MODE_CREATE_DUMB _IOWR('d', 0xB2, struct drm_mode_create_dumb)
#define DRM_IOCTL_MODE_MAP_DUMB _IOWR('d', 0xB3, struct drm_mode_map_dumb)
#define DRM_MODE_CONNECTED 1
#define DRM_MODE_TYPE_PREFERRED (1 << 3)

static int failures;

static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail[0] ? " " : "", detail);
    fflush(stdout);
    if (!ok) {
        failures++;
    }
}

static int xioctl(int fd, unsigned long request, void *arg) {
    int r;
    do {
        r = ioctl(fd, request, arg);
    } while (r == -1 && errno == EINTR);
    return r;
}

/* The picture, as the host test computes it: XRGB, the X byte left 0. */
static uint32_t pattern(uint32_t x, uint32_t y, uint32_t salt) {
    return ((x * 7 + salt) & 0xff) << 16 | ((y * 5 + salt) & 0xff) << 8 | (((x ^ y) + salt) & 0xff);
}

int main(int argc, char **argv) {
    char detail[256];
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: gpucheck WIDTH HEIGHT [FRAMES]\n");
        return 2;
    }
    uint32_t want_w = (uint32_t) atoi(argv[1]);
    uint32_t want_h = (uint32_t) atoi(argv[2]);

    int fd = open("/dev/dri/card0", O_RDWR | O_CLOEXEC);
    snprintf(detail, sizeof detail, "%s", fd < 0 ? strerror(errno) : "");
    check(fd >= 0, "open /dev/dri/card0", detail);
    if (fd < 0) {
        return 1;
    }

    char name[64] = {0};
    struct drm_version v = {0};
    v.name = name;
    v.name_len = sizeof name - 1;
    int r = xioctl(fd, DRM_IOCTL_VERSION, &v);
    snprintf(detail, sizeof detail, "%s", r == 0 ? name : strerror(errno));
    check(r == 0 && strcmp(name, "virtio_gpu") == 0, "driver virtio_gpu", detail);

    struct drm_mode_card_res res = {0};
    r = xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &res);
    uint32_t crtcs[16] = {0}, connectors[16] = {0};
    if (r == 0 && res.count_crtcs > 0 && res.count_crtcs <= 16 && res.count_connectors > 0 && res.count_connectors <= 16) {
        struct drm_mode_card_res ids = {0};
        ids.crtc_id_ptr = (uintptr_t) crtcs;
        ids.connector_id_ptr = (uintptr_t) connectors;
        ids.count_crtcs = res.count_crtcs;
        ids.count_connectors = res.count_connectors;
        r = xioctl(fd, DRM_IOCTL_MODE_GETRESOURCES, &ids);
    } else if (r == 0) {
        r = -1;
    }
    snprintf(detail, sizeof detail, "crtcs=%u connectors=%u max=%ux%u", res.count_crtcs, res.count_connectors,
             res.max_width, res.max_height);
    check(r == 0, "resources", detail);
    if (r != 0) {
        return 1;
    }

    struct drm_mode_modeinfo modes[64];
    struct drm_mode_get_connector conn = {0};
    conn.connector_id = connectors[0];
    r = xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn); /* the first call probes and counts */
    uint32_t count = conn.count_modes > 64 ? 64 : conn.count_modes;
    memset(&conn, 0, sizeof conn);
    conn.connector_id = connectors[0];
    conn.modes_ptr = (uintptr_t) modes;
    conn.count_modes = count;
    if (r == 0) {
        r = xioctl(fd, DRM_IOCTL_MODE_GETCONNECTOR, &conn);
    }
    int preferred = -1;
    for (uint32_t i = 0; r == 0 && i < conn.count_modes && i < count; i++) {
        if (modes[i].type & DRM_MODE_TYPE_PREFERRED) {
            preferred = (int) i;
            break;
        }
    }
    snprintf(detail, sizeof detail, "connection=%u modes=%u preferred=%s mm=%ux%u", conn.connection, conn.count_modes,
             preferred >= 0 ? modes[preferred].name : "none", conn.mm_width, conn.mm_height);
    check(r == 0 && conn.connection == DRM_MODE_CONNECTED && preferred >= 0, "connector", detail);
    if (preferred < 0) {
        return 1;
    }
    struct drm_mode_modeinfo mode = modes[preferred];
    snprintf(detail, sizeof detail, "%ux%u@%u", mode.hdisplay, mode.vdisplay, mode.vrefresh);
    check(mode.hdisplay == want_w && mode.vdisplay == want_h, "preferred mode", detail);
    uint32_t w = mode.hdisplay, h = mode.vdisplay;

    struct drm_mode_create_dumb create = {.height = h, .width = w, .bpp = 32};
    r = xioctl(fd, DRM_IOCTL_MODE_CREATE_DUMB, &create);
    snprintf(detail, sizeof detail, "handle=%u pitch=%u size=%llu", create.handle, create.pitch,
             (unsigned long long) create.size);
    check(r == 0 && create.pitch >= w * 4, "create dumb", detail);
    if (r != 0) {
        return 1;
    }
    struct drm_mode_fb_cmd fb = {.width = w, .height = h, .pitch = create.pitch, .bpp = 32, .depth = 24,
                                 .handle = create.handle};
    r = xioctl(fd, DRM_IOCTL_MODE_ADDFB, &fb);
    snprintf(detail, sizeof detail, "fb=%u%s%s", fb.fb_id, r ? " " : "", r ? strerror(errno) : "");
    check(r == 0, "addfb", detail);
    struct drm_mode_map_dumb map = {.handle = create.handle};
    r = xioctl(fd, DRM_IOCTL_MODE_MAP_DUMB, &map);
    void *pixels = r == 0 ? mmap(NULL, create.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t) map.offset) : MAP_FAILED;
    check(pixels != MAP_FAILED, "map dumb", pixels == MAP_FAILED ? strerror(errno) : "");
    if (pixels == MAP_FAILED || fb.fb_id == 0) {
        return 1;
    }

    for (uint32_t y = 0; y < h; y++) {
        uint32_t *row = (uint32_t *) ((char *) pixels + (size_t) y * create.pitch);
        for (uint32_t x = 0; x < w; x++) {
            row[x] = pattern(x, y, 0);
        }
    }
    struct drm_mode_crtc crtc = {0};
    crtc.set_connectors_ptr = (uintptr_t) &connectors[0];
    crtc.count_connectors = 1;
    crtc.crtc_id = crtcs[0];
    crtc.fb_id = fb.fb_id;
    crtc.mode_valid = 1;
    crtc.mode = mode;
    r = xioctl(fd, DRM_IOCTL_MODE_SETCRTC, &crtc);
    snprintf(detail, sizeof detail, "crtc=%u fb=%u%s%s", crtc.crtc_id, fb.fb_id, r ? " " : "", r ? strerror(errno) : "");
    check(r == 0, "setcrtc pattern 0", detail);

    uint32_t x0 = w / 4, y0 = h / 4, cw = w / 2, ch = h / 3;
    for (uint32_t y = y0; y < y0 + ch; y++) {
        uint32_t *row = (uint32_t *) ((char *) pixels + (size_t) y * create.pitch);
        for (uint32_t x = x0; x < x0 + cw; x++) {
            row[x] = pattern(x, y, 77);
        }
    }
    struct drm_clip_rect clip = {(unsigned short) x0, (unsigned short) y0, (unsigned short) (x0 + cw),
                                 (unsigned short) (y0 + ch)};
    struct drm_mode_fb_dirty_cmd dirty = {.fb_id = fb.fb_id, .num_clips = 1, .clips_ptr = (uintptr_t) &clip};
    r = xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &dirty);
    snprintf(detail, sizeof detail, "%ux%u at %u,%u%s%s", cw, ch, x0, y0, r ? " " : "", r ? strerror(errno) : "");
    check(r == 0, "dirtyfb pattern 77", detail);

    int frames = argc == 4 ? atoi(argv[3]) : 0;
    if (frames > 0) {
        struct drm_clip_rect all = {0, 0, (unsigned short) w, (unsigned short) h};
        struct drm_mode_fb_dirty_cmd full = {.fb_id = fb.fb_id, .num_clips = 1, .clips_ptr = (uintptr_t) &all};
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int bad = 0;
        for (int f = 0; f < frames; f++) {
            for (uint32_t y = 0; y < h; y++) {
                uint32_t *row = (uint32_t *) ((char *) pixels + (size_t) y * create.pitch);
                for (uint32_t x = 0; x < w; x++) {
                    row[x] = pattern(x, y, (uint32_t) f + 1);
                }
            }
            bad |= xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &full) != 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double) (t1.tv_sec - t0.tv_sec) + (double) (t1.tv_nsec - t0.tv_nsec) / 1e9;
        snprintf(detail, sizeof detail, "%d in %.3f s: %.1f per second (%ux%u, full-screen redraw and dirtyfb)", frames, s,
                 frames / s, w, h);
        check(!bad, "frames", detail);
        for (uint32_t y = 0; y < h; y++) {
            uint32_t *row = (uint32_t *) ((char *) pixels + (size_t) y * create.pitch);
            for (uint32_t x = 0; x < w; x++) {
                int inside = x >= x0 && x < x0 + cw && y >= y0 && y < y0 + ch;
                row[x] = pattern(x, y, inside ? 77 : 0);
            }
        }
        r = xioctl(fd, DRM_IOCTL_MODE_DIRTYFB, &full);
        check(r == 0, "dirtyfb final picture", r ? strerror(errno) : "");
    }

    printf("gpucheck %s\n", failures == 0 ? "passed" : "FAILED");
    fflush(stdout);
    return failures == 0 ? 0 : 1;
}
