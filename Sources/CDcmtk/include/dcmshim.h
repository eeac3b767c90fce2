#ifndef UNIVERSEG_DCMSHIM_H
#define UNIVERSEG_DCMSHIM_H
// A plain C API over DCMTK 3.6.7 (Debian's libdcmtk-dev): parse a DICOM Part-10 object from memory,
// decode one frame to float modality values, write and read a BINARY DICOM Segmentation.
// Every entry point catches C++ exceptions; failures come back as a status code and a message.
// Messages never contain attribute values (no patient data).
//
// The implementation is a shared library of its own (libUniverSegDCMTK.so, Sources/CDcmtkShim),
// loaded at the first call (Sources/CDcmtk/dcmloader.c); when it cannot be loaded, the calls
// fail with DCMSHIM_UNAVAILABLE and dcmshim_load_error says why.
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/// The DCMTK version this shim was built against ("3.6.7"); "" when the library cannot be loaded.
const char *dcmshim_version(void);

/// NULL when the shim library is loaded (loading it if need be), else why it cannot be.
const char *dcmshim_load_error(void);

/// Status codes returned by the entry points.
enum {
    DCMSHIM_OK = 0,
    DCMSHIM_INVALID = 1,      ///< malformed, truncated or inconsistent input
    DCMSHIM_UNSUPPORTED = 2,  ///< well-formed but not handled (SOP class, transfer syntax, photometric)
    DCMSHIM_TOO_LARGE = 3,    ///< over a configured limit
    DCMSHIM_UNAVAILABLE = 4,  ///< the shim library cannot be loaded (an installation fault, not the input's)
};

typedef struct dcmshim_error {
    int32_t code;
    char message[512];
} dcmshim_error;

typedef struct dcmshim_limits {
    int64_t max_frames;
    int64_t max_rows;
    int64_t max_columns;
    int64_t max_pixels_per_frame;
    int64_t max_instance_bytes;
} dcmshim_limits;

/// Scalar facts about a parsed image. Strings are NUL-terminated; `has_*` is 1 when the attribute is present.
typedef struct dcmshim_info {
    char sop_class_uid[68];
    char sop_instance_uid[68];
    char study_instance_uid[68];
    char series_instance_uid[68];
    char transfer_syntax_uid[68];
    char frame_of_reference_uid[68];
    int32_t has_frame_of_reference;
    char modality[20];
    int32_t has_modality;
    char photometric[24];
    int32_t rows, columns, frames;
    int32_t samples_per_pixel, bits_allocated, bits_stored, high_bit, pixel_representation, planar_configuration;
    int32_t encapsulated;
    int32_t instance_number;
    int32_t has_instance_number;
    double orientation[6];
    int32_t has_orientation;
    double pixel_spacing[2];
    int32_t has_pixel_spacing;
    double slice_thickness;
    int32_t has_slice_thickness;
} dcmshim_info;

typedef struct dcmshim_image dcmshim_image;

/// Parses `bytes` and validates the image attributes against `limits` (before any pixel allocation).
/// On success `*out` owns a parsed object to be released with dcmshim_image_close.
int32_t dcmshim_image_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits, dcmshim_image **out,
                           dcmshim_error *error);
void dcmshim_image_close(dcmshim_image *image);
void dcmshim_image_info(const dcmshim_image *image, dcmshim_info *info);
/// ImagePositionPatient of frame `frame` (0-based), top level or functional groups; returns 1 when present.
int32_t dcmshim_image_position(const dcmshim_image *image, int32_t frame, double out[3]);
/// Decodes frame `frame` (0-based) into `out` (rows*columns floats): modality values, luminance for colour,
/// MONOCHROME1 inverted.
int32_t dcmshim_image_frame(dcmshim_image *image, int32_t frame, float *out, size_t count, dcmshim_error *error);

// MARK: Segmentation writing

typedef struct dcmshim_seg_description {
    const char *segment_label;
    const char *algorithm_name;
    const char *algorithm_version;
    const char *manufacturer;
    const char *manufacturer_model_name;
    const char *software_versions;
    const char *device_serial_number;
    const char *series_description;
    int32_t series_number;
    const char *series_instance_uid;  ///< NULL: a new UID
    const char *sop_instance_uid;     ///< NULL: a new UID
} dcmshim_seg_description;

typedef struct dcmshim_buffer {
    const uint8_t *bytes;
    size_t length;
} dcmshim_buffer;

/// One segmentation frame: `mask` has rows*columns bytes (0 or 1).
typedef struct dcmshim_seg_input_frame {
    int32_t source;        ///< index into the sources
    int32_t source_frame;  ///< 0-based frame of that source
    int32_t source_is_multiframe;
    const uint8_t *mask;
    int32_t has_position;
    double position[3];
} dcmshim_seg_input_frame;

typedef struct dcmshim_seg_geometry {
    int32_t rows, columns;
    int32_t has_orientation;
    double orientation[6];
    int32_t has_pixel_spacing;
    double pixel_spacing[2];
    int32_t has_slice_thickness;
    double slice_thickness;
    int32_t use_positions;  ///< 1: frame of reference present and every frame has a position
} dcmshim_seg_geometry;

typedef struct dcmshim_seg_output {
    uint8_t *bytes;  ///< release with dcmshim_free
    size_t length;
    char sop_instance_uid[68];
    char series_instance_uid[68];
    char study_instance_uid[68];
} dcmshim_seg_output;

int32_t dcmshim_seg_write(const dcmshim_buffer *sources, size_t source_count, const dcmshim_seg_input_frame *frames,
                          size_t frame_count, const dcmshim_seg_geometry *geometry,
                          const dcmshim_seg_description *description, dcmshim_seg_output *output,
                          dcmshim_error *error);
void dcmshim_free(void *pointer);

// MARK: Segmentation reading

typedef struct dcmshim_seg dcmshim_seg;

/// Parses a Segmentation (BINARY or FRACTIONAL) and validates it against `limits`.
int32_t dcmshim_seg_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits, dcmshim_seg **out,
                         dcmshim_error *error);
void dcmshim_seg_close(dcmshim_seg *seg);
void dcmshim_seg_size(const dcmshim_seg *seg, int32_t *rows, int32_t *columns, int32_t *frames, int32_t *segments);
/// Segment `index` (0-based in the SegmentSequence): its number and label (NUL-terminated, truncated to `capacity`).
int32_t dcmshim_seg_segment(const dcmshim_seg *seg, int32_t index, int32_t *number, char *label, size_t capacity);
/// Frame `index` (0-based): segment number, referenced source SOP instance UID (empty when absent) and
/// referenced frame number (1-based, 0 when absent); the mask (rows*columns bytes, 0/1) into `mask`.
int32_t dcmshim_seg_frame(const dcmshim_seg *seg, int32_t index, int32_t *segment_number, char source_uid[68],
                          int32_t *source_frame, uint8_t *mask, size_t count, dcmshim_error *error);

#ifdef __cplusplus
}
#endif
#endif
