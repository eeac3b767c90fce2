// The dcmshim.h entry points, forwarded to the DCMTK shim library (libUniverSegDCMTK.so), which
// is loaded at the first call instead of when the process starts. DCMTK and the libraries it
// pulls in (22 shared objects: dcmdata, dcmseg, the JPEG codecs, libtiff, libxml2, ICU) cost
// every process about 6 ms of dynamic linking; commands that never touch DICOM no longer pay it.
//
// Where the library is looked for: $UNIVERSEG_DCMTK_SHIM when set (a path), else beside the
// executable (a build directory), else in ../lib/universeg-worker beside it (the Debian package:
// /usr/bin and /usr/lib/universeg-worker), else the dynamic loader's search path. When it cannot
// be loaded, every call fails with DCMSHIM_UNAVAILABLE and the reason (dcmshim_load_error).
#define _GNU_SOURCE
#include "dcmshim.h"

#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SHIM_LIBRARY "libUniverSegDCMTK.so"

// Every entry point, as it is named in the library: dcmshim_impl_<name>.
#define SHIM_FUNCTIONS(X) \
    X(version) X(image_open) X(image_close) X(image_info) X(image_position) X(image_frame) X(seg_write) \
    X(free) X(seg_open) X(seg_close) X(seg_size) X(seg_segment) X(seg_frame)

static struct {
#define SHIM_FIELD(name) __typeof__(dcmshim_##name) *name;
    SHIM_FUNCTIONS(SHIM_FIELD)
#undef SHIM_FIELD
} shim;

static int shim_loaded;
static char shim_error[400];
static pthread_once_t shim_once = PTHREAD_ONCE_INIT;

static void *open_at(const char *path, char *errors, size_t capacity) {
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *reason = dlerror();
        size_t used = strlen(errors);
        if (used < capacity) {
            snprintf(errors + used, capacity - used, "%s%s", used ? "; " : "", reason ? reason : path);
        }
    }
    return handle;
}

static void *open_library(char *errors, size_t capacity) {
    const char *override = getenv("UNIVERSEG_DCMTK_SHIM");
    if (override && *override) return open_at(override, errors, capacity);
    char executable[PATH_MAX];
    ssize_t length = readlink("/proc/self/exe", executable, sizeof executable - 1);
    if (length > 0) {
        executable[length] = '\0';
        char *slash = strrchr(executable, '/');
        if (slash) {
            *slash = '\0';
            const char *beside[] = {"/" SHIM_LIBRARY, "/../lib/universeg-worker/" SHIM_LIBRARY};
            for (size_t i = 0; i < sizeof beside / sizeof beside[0]; i++) {
                char path[PATH_MAX];
                if (snprintf(path, sizeof path, "%s%s", executable, beside[i]) >= (int)sizeof path) continue;
                if (access(path, F_OK) != 0) continue;
                void *handle = open_at(path, errors, capacity);
                if (handle) return handle;
            }
        }
    }
    return open_at(SHIM_LIBRARY, errors, capacity);
}

static void load_shim(void) {
    char errors[sizeof shim_error - 64] = "";
    void *handle = open_library(errors, sizeof errors);
    if (!handle) {
        snprintf(shim_error, sizeof shim_error, "DICOM support unavailable: cannot load %s (%s)", SHIM_LIBRARY, errors);
        return;
    }
#define SHIM_RESOLVE(name)                                                                                   \
    shim.name = (__typeof__(shim.name))dlsym(handle, "dcmshim_impl_" #name);                                 \
    if (!shim.name) {                                                                                        \
        snprintf(shim_error, sizeof shim_error, "DICOM support unavailable: %s lacks dcmshim_impl_" #name,  \
                 SHIM_LIBRARY);                                                                              \
        return;                                                                                              \
    }
    SHIM_FUNCTIONS(SHIM_RESOLVE)
#undef SHIM_RESOLVE
    shim_loaded = 1;
}

static int shim_available(void) {
    pthread_once(&shim_once, load_shim);
    return shim_loaded;
}

static int32_t shim_unavailable(dcmshim_error *error) {
    if (error) {
        error->code = DCMSHIM_UNAVAILABLE;
        snprintf(error->message, sizeof error->message, "%s", shim_error);
    }
    return DCMSHIM_UNAVAILABLE;
}

const char *dcmshim_load_error(void) { return shim_available() ? NULL : shim_error; }

const char *dcmshim_version(void) { return shim_available() ? shim.version() : ""; }

int32_t dcmshim_image_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits, dcmshim_image **out,
                           dcmshim_error *error) {
    if (!shim_available()) return shim_unavailable(error);
    return shim.image_open(bytes, length, limits, out, error);
}

void dcmshim_image_close(dcmshim_image *image) {
    if (shim_available()) shim.image_close(image);
}

void dcmshim_image_info(const dcmshim_image *image, dcmshim_info *info) {
    if (shim_available()) {
        shim.image_info(image, info);
    } else {
        memset(info, 0, sizeof *info);
    }
}

int32_t dcmshim_image_position(const dcmshim_image *image, int32_t frame, double out[3]) {
    return shim_available() ? shim.image_position(image, frame, out) : 0;
}

int32_t dcmshim_image_frame(dcmshim_image *image, int32_t frame, float *out, size_t count, dcmshim_error *error) {
    if (!shim_available()) return shim_unavailable(error);
    return shim.image_frame(image, frame, out, count, error);
}

int32_t dcmshim_seg_write(const dcmshim_buffer *sources, size_t source_count, const dcmshim_seg_input_frame *frames,
                          size_t frame_count, const dcmshim_seg_geometry *geometry,
                          const dcmshim_seg_description *description, dcmshim_seg_output *output,
                          dcmshim_error *error) {
    if (!shim_available()) return shim_unavailable(error);
    return shim.seg_write(sources, source_count, frames, frame_count, geometry, description, output, error);
}

void dcmshim_free(void *pointer) {
    if (shim_available()) shim.free(pointer);
}

int32_t dcmshim_seg_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits, dcmshim_seg **out,
                         dcmshim_error *error) {
    if (!shim_available()) return shim_unavailable(error);
    return shim.seg_open(bytes, length, limits, out, error);
}

void dcmshim_seg_close(dcmshim_seg *seg) {
    if (shim_available()) shim.seg_close(seg);
}

void dcmshim_seg_size(const dcmshim_seg *seg, int32_t *rows, int32_t *columns, int32_t *frames, int32_t *segments) {
    if (shim_available()) {
        shim.seg_size(seg, rows, columns, frames, segments);
    } else {
        *rows = *columns = *frames = *segments = 0;
    }
}

int32_t dcmshim_seg_segment(const dcmshim_seg *seg, int32_t index, int32_t *number, char *label, size_t capacity) {
    return shim_available() ? shim.seg_segment(seg, index, number, label, capacity) : DCMSHIM_UNAVAILABLE;
}

int32_t dcmshim_seg_frame(const dcmshim_seg *seg, int32_t index, int32_t *segment_number, char source_uid[68],
                          int32_t *source_frame, uint8_t *mask, size_t count, dcmshim_error *error) {
    if (!shim_available()) return shim_unavailable(error);
    return shim.seg_frame(seg, index, segment_number, source_uid, source_frame, mask, count, error);
}
