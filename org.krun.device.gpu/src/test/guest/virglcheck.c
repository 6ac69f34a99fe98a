/*
 * virglcheck: the program the virgl Linux guest test of org.krun.device.gpu runs inside a Debian guest with
 * Mesa. It opens a surfaceless EGL display (Mesa finds /dev/dri/renderD128 and its virtio_gpu driver, which
 * is virgl when the device offers VIRTIO_GPU_F_VIRGL), makes an OpenGL ES 2 context current without a
 * surface, reports GL_RENDERER, and renders a known image into a W x H texture through a framebuffer
 * object: the whole of it cleared to colour A, its lower-left quadrant (scissored) to colour B. It reads the
 * image back with glReadPixels, checks every pixel, and prints one line per check ("ok ..." or
 * "FAIL ..."), ending with "virglcheck passed" and exit status 0.
 *
 *   virglcheck W H RGB_A RGB_B      (colours as hex RRGGBB)
 *
 * It then waits for a line on stdin before it tears the context down, so the host can read the image out
 * of the device while it still exists ("waiting" says when).
 */
#include <EGL/egl.h>
#include <EGL/eglext.h>
#include <GLES2/gl2.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

/* linux/virtgpu_drm.h (not in Debian's libdrm-dev): DRM_IOCTL_VIRTGPU_GETPARAM and the features it reports. */
struct virtgpu_getparam {
    uint64_t param;
    uint64_t value; /* a pointer to an int */
};
#define VIRTGPU_GETPARAM _IOWR('d', 0x40 + 0x03, struct virtgpu_getparam)
#define VIRTGPU_PARAM_3D_FEATURES 1
#define VIRTGPU_PARAM_RESOURCE_BLOB 3
#define VIRTGPU_PARAM_HOST_VISIBLE 4

static int getparam(int fd, uint64_t param) {
    int value = -1;
    struct virtgpu_getparam p = {param, (uint64_t) (uintptr_t) &value};
    return ioctl(fd, VIRTGPU_GETPARAM, &p) == 0 ? value : -1;
}

static int failures;

static void check(int ok, const char *what, const char *detail) {
    printf("%s %s%s%s\n", ok ? "ok" : "FAIL", what, detail[0] ? " " : "", detail);
    fflush(stdout);
    if (!ok) {
        failures++;
    }
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: virglcheck W H RRGGBB RRGGBB\n");
        return 2;
    }
    int w = atoi(argv[1]);
    int h = atoi(argv[2]);
    unsigned a = (unsigned) strtoul(argv[3], NULL, 16);
    unsigned b = (unsigned) strtoul(argv[4], NULL, 16);
    char detail[256];

    /* What the guest's driver made of the device: 3D, blob resources, and the host-visible region it claimed. */
    int node = open("/dev/dri/renderD128", O_RDWR | O_CLOEXEC);
    int features3d = node < 0 ? -1 : getparam(node, VIRTGPU_PARAM_3D_FEATURES);
    int blob = node < 0 ? -1 : getparam(node, VIRTGPU_PARAM_RESOURCE_BLOB);
    int hostVisible = node < 0 ? -1 : getparam(node, VIRTGPU_PARAM_HOST_VISIBLE);
    snprintf(detail, sizeof detail, "3d=%d resource_blob=%d host_visible=%d", features3d, blob, hostVisible);
    check(features3d == 1 && blob == 1 && hostVisible == 1, "virtio-gpu params", detail);
    if (node >= 0) {
        close(node);
    }

    PFNEGLGETPLATFORMDISPLAYEXTPROC getPlatformDisplay =
        (PFNEGLGETPLATFORMDISPLAYEXTPROC) eglGetProcAddress("eglGetPlatformDisplayEXT");
    check(getPlatformDisplay != NULL, "eglGetPlatformDisplayEXT", "");
    if (!getPlatformDisplay) {
        return 1;
    }
    EGLDisplay display = getPlatformDisplay(EGL_PLATFORM_SURFACELESS_MESA, EGL_DEFAULT_DISPLAY, NULL);
    EGLint major = 0, minor = 0;
    int initialized = display != EGL_NO_DISPLAY && eglInitialize(display, &major, &minor);
    snprintf(detail, sizeof detail, "%d.%d %s", major, minor, initialized ? eglQueryString(display, EGL_VENDOR) : "");
    check(initialized, "egl surfaceless", detail);
    if (!initialized) {
        return 1;
    }
    eglBindAPI(EGL_OPENGL_ES_API);
    const EGLint configAttribs[] = {EGL_SURFACE_TYPE, EGL_DONT_CARE, EGL_RENDERABLE_TYPE, EGL_OPENGL_ES2_BIT, EGL_NONE};
    EGLConfig config;
    EGLint configs = 0;
    eglChooseConfig(display, configAttribs, &config, 1, &configs);
    const EGLint contextAttribs[] = {EGL_CONTEXT_CLIENT_VERSION, 2, EGL_NONE};
    EGLContext context = configs > 0 ? eglCreateContext(display, config, EGL_NO_CONTEXT, contextAttribs) : EGL_NO_CONTEXT;
    int current = context != EGL_NO_CONTEXT && eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, context);
    snprintf(detail, sizeof detail, "(0x%x)", eglGetError());
    check(current, "context current", current ? "" : detail);
    if (!current) {
        return 1;
    }
    const char *renderer = (const char *) glGetString(GL_RENDERER);
    printf("renderer %s\n", renderer ? renderer : "(none)");
    printf("version %s\n", (const char *) glGetString(GL_VERSION));
    check(renderer != NULL && strstr(renderer, "virgl") != NULL, "renderer is virgl", "");

    GLuint texture, framebuffer;
    glGenTextures(1, &texture);
    glBindTexture(GL_TEXTURE_2D, texture);
    glTexImage2D(GL_TEXTURE_2D, 0, GL_RGBA, w, h, 0, GL_RGBA, GL_UNSIGNED_BYTE, NULL);
    glGenFramebuffers(1, &framebuffer);
    glBindFramebuffer(GL_FRAMEBUFFER, framebuffer);
    glFramebufferTexture2D(GL_FRAMEBUFFER, GL_COLOR_ATTACHMENT0, GL_TEXTURE_2D, texture, 0);
    check(glCheckFramebufferStatus(GL_FRAMEBUFFER) == GL_FRAMEBUFFER_COMPLETE, "framebuffer complete", "");
    glViewport(0, 0, w, h);
    glClearColor(((a >> 16) & 0xff) / 255.0f, ((a >> 8) & 0xff) / 255.0f, (a & 0xff) / 255.0f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    glEnable(GL_SCISSOR_TEST);
    glScissor(0, 0, w / 2, h / 2);
    glClearColor(((b >> 16) & 0xff) / 255.0f, ((b >> 8) & 0xff) / 255.0f, (b & 0xff) / 255.0f, 1.0f);
    glClear(GL_COLOR_BUFFER_BIT);
    glDisable(GL_SCISSOR_TEST);
    glFinish();

    unsigned char *pixels = calloc((size_t) w * h, 4);
    glReadPixels(0, 0, w, h, GL_RGBA, GL_UNSIGNED_BYTE, pixels);
    snprintf(detail, sizeof detail, "0x%x", glGetError());
    int wrong = 0;
    for (int y = 0; y < h && wrong < 1; y++) {
        for (int x = 0; x < w; x++) {
            unsigned want = x < w / 2 && y < h / 2 ? b : a; /* row 0 is the bottom in GL */
            unsigned char *p = pixels + 4 * ((size_t) y * w + x);
            unsigned got = (unsigned) p[0] << 16 | (unsigned) p[1] << 8 | p[2];
            if (got != want || p[3] != 0xff) {
                snprintf(detail, sizeof detail, "pixel %d,%d is %06x/%02x, not %06x", x, y, got, p[3], want);
                wrong++;
                break;
            }
        }
    }
    if (!wrong) {
        snprintf(detail, sizeof detail, "%dx%d %06x with %06x in the lower left quadrant", w, h, a, b);
    }
    check(!wrong, "image read back", detail);

    printf("waiting\n");
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) {
        line[0] = 0;
    }
    glDeleteFramebuffers(1, &framebuffer);
    glDeleteTextures(1, &texture);
    eglMakeCurrent(display, EGL_NO_SURFACE, EGL_NO_SURFACE, EGL_NO_CONTEXT);
    eglDestroyContext(display, context);
    eglTerminate(display);
    free(pixels);
    if (failures == 0) {
        printf("virglcheck passed\n");
    }
    return failures == 0 ? 0 : 1;
}
