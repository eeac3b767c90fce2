#ifndef UNIVERSEG_CLIBPNG_SHIM_H
#define UNIVERSEG_CLIBPNG_SHIM_H
// libpng reports errors with longjmp, which Swift cannot take part in. Every libpng
// call that may fail therefore happens inside the static inline C functions below:
// the setjmp frame, the libpng structures and their cleanup all live in one C frame,
// and Swift only sees a return code and a message.
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef struct {
    uint32_t width;
    uint32_t height;
    /// Color type of the file: 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA.
    int color_type;
    /// Bit depth of the file (1, 2, 4, 8, 16).
    int file_bit_depth;
    /// After decoding: 1 (gray) or 3 (RGB) channels, alpha stripped.
    int channels;
    /// After decoding: 8 or 16 bits per channel (16-bit samples in host byte order).
    int bit_depth;
    char message[200];
} useg_png_info;

typedef struct {
    const unsigned char *data;
    size_t size;
    size_t offset;
} useg_png_source;

static void useg_png_read_fn(png_structp png, png_bytep out, size_t count) {
    useg_png_source *source = (useg_png_source *)png_get_io_ptr(png);
    if (count > source->size - source->offset) {
        png_error(png, "PNG data ends early (truncated file)");
    }
    memcpy(out, source->data + source->offset, count);
    source->offset += count;
}

static void useg_png_error_fn(png_structp png, png_const_charp message) {
    useg_png_info *info = (useg_png_info *)png_get_error_ptr(png);
    snprintf(info->message, sizeof(info->message), "%s", message ? message : "unknown libpng error");
    png_longjmp(png, 1);
}

static void useg_png_warning_fn(png_structp png, png_const_charp message) {
    (void)png;
    (void)message;
}

/// Reads the header (and, when `out` is not NULL, the pixels) of an in-memory PNG.
///
/// Limits are enforced before any pixel memory is touched: `max_width`/`max_height`
/// through png_set_user_limits and ancillary chunk sizes through png_set_chunk_malloc_max.
/// With `out == NULL` only `info` is filled. Otherwise `out` must hold
/// width * height * channels * (bit_depth / 8) bytes (`out_size`), where channels and
/// bit_depth are the values a header-only call reported.
/// Returns 0 on success and -1 with `info->message` set on failure.
static inline int useg_png_decode(const unsigned char *data, size_t size,
                                  uint32_t max_width, uint32_t max_height,
                                  unsigned char *out, size_t out_size,
                                  useg_png_info *info) {
    memset(info, 0, sizeof(*info));
    if (size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(info->message, sizeof(info->message), "not a PNG file (bad signature)");
        return -1;
    }
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, info, useg_png_error_fn,
                                             useg_png_warning_fn);
    if (png == NULL) {
        snprintf(info->message, sizeof(info->message), "libpng could not allocate a reader");
        return -1;
    }
    png_infop pinfo = png_create_info_struct(png);
    if (pinfo == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        snprintf(info->message, sizeof(info->message), "libpng could not allocate an info struct");
        return -1;
    }
    useg_png_source source = {data, size, 0};
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &pinfo, NULL);
        return -1;
    }
    png_set_read_fn(png, &source, useg_png_read_fn);
    png_set_user_limits(png, max_width, max_height);
    png_set_chunk_malloc_max(png, 8u << 20);
    png_read_info(png, pinfo);

    png_uint_32 width = 0, height = 0;
    int bit_depth = 0, color_type = 0, interlace = 0;
    png_get_IHDR(png, pinfo, &width, &height, &bit_depth, &color_type, &interlace, NULL, NULL);
    info->width = width;
    info->height = height;
    info->color_type = color_type;
    info->file_bit_depth = bit_depth;

    if (color_type == PNG_COLOR_TYPE_PALETTE) {
        png_set_palette_to_rgb(png);
    }
    if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) {
        png_set_expand_gray_1_2_4_to_8(png);
    }
    if (color_type & PNG_COLOR_MASK_ALPHA) {
        png_set_strip_alpha(png);
    }
    if (bit_depth == 16) {
        const uint16_t probe = 1;
        if (*(const unsigned char *)&probe == 1) {
            png_set_swap(png);
        }
    }
    int passes = png_set_interlace_handling(png);
    png_read_update_info(png, pinfo);
    info->channels = png_get_channels(png, pinfo);
    info->bit_depth = png_get_bit_depth(png, pinfo);

    if (out != NULL) {
        size_t row_bytes = png_get_rowbytes(png, pinfo);
        size_t expected = (size_t)width * (size_t)info->channels * (size_t)(info->bit_depth / 8);
        if (row_bytes != expected || out_size < row_bytes * (size_t)height) {
            png_destroy_read_struct(&png, &pinfo, NULL);
            snprintf(info->message, sizeof(info->message), "output buffer does not match the image");
            return -1;
        }
        for (int pass = 0; pass < passes; pass++) {
            for (png_uint_32 y = 0; y < height; y++) {
                png_read_row(png, out + (size_t)y * row_bytes, NULL);
            }
        }
        png_read_end(png, NULL);
    }
    png_destroy_read_struct(&png, &pinfo, NULL);
    return 0;
}

/// Encodes 8-bit grayscale pixels as a PNG in memory (libpng's simplified API, which
/// reports errors through `image.message` instead of longjmp).
/// Call with `out == NULL` to learn the size, then again with a buffer of that size.
/// Returns 0 on success and -1 with `message` set on failure.
/* 8-bit pixels, row-major: channels 1 (gray) or 3 (RGB). */
static inline int useg_png_encode8(const unsigned char *pixels, uint32_t width, uint32_t height, int channels,
                                   void *out, size_t *out_size, char *message, size_t message_size) {
    png_image image;
    memset(&image, 0, sizeof(image));
    image.version = PNG_IMAGE_VERSION;
    image.width = width;
    image.height = height;
    image.format = channels == 3 ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    if (!png_image_write_to_memory(&image, out, out_size, 0, pixels, 0, NULL)) {
        snprintf(message, message_size, "%s", image.message);
        png_image_free(&image);
        return -1;
    }
    png_image_free(&image);
    return 0;
}

static inline const char *useg_png_version(void) {
    return png_get_libpng_ver(NULL);
}

#endif
