// C API over DCMTK 3.6.7: see dcmshim.h (Sources/CDcmtk/include). Built as its own shared
// library, libUniverSegDCMTK.so: each entry point dcmshim_<name> is defined here as
// dcmshim_impl_<name>, the only symbols it exports, and CDcmtk's loader forwards to them once it
// has loaded the library (at the first DICOM call of a process).
#include "dcmshim.h"

#define DCMSHIM_EXPORT __attribute__((visibility("default")))

#include <dcmtk/config/osconfig.h>
#include <dcmtk/dcmdata/dctk.h>
#include <dcmtk/dcmdata/dcistrmb.h>
#include <dcmtk/dcmdata/dcostrmb.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcrledrg.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmjpeg/djdecode.h>
#include <dcmtk/dcmjpls/djdecode.h>
#include <dcmtk/oflog/oflog.h>
#include <dcmtk/dcmseg/segdoc.h>
#include <dcmtk/dcmseg/segment.h>
#include <dcmtk/dcmfg/fgpixmsr.h>
#include <dcmtk/dcmfg/fgplanor.h>
#include <dcmtk/dcmfg/fgplanpo.h>
#include <dcmtk/dcmfg/fgfracon.h>
#include <dcmtk/dcmfg/fgderimg.h>
#include <dcmtk/dcmiod/iodreferences.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <vector>

// SwiftPM links every library product through the Swift driver, which adds swiftrt.o, whose
// constructor registers the image's Swift metadata with the Swift runtime (this library has none).
// These two definitions satisfy swiftrt.o within the library, and it is linked against the static
// Swift runtime (Package.swift), so nothing of the runtime is linked in and libswiftCore.so is not
// needed: the library loads into the binary with the Swift runtime linked in, on a node without a
// Swift toolchain.
extern "C" __attribute__((visibility("hidden"))) void swift_addNewDSOImage(const void *) {}
extern "C" __attribute__((visibility("hidden"))) bool _swift_backtrace_isThunkFunction(const char *) { return false; }

extern "C" DCMSHIM_EXPORT const char *dcmshim_impl_version(void) { return OFFIS_DCMTK_VERSION_STRING; }

namespace {

std::once_flag initOnce;

/// Registers the RLE, JPEG and JPEG-LS decoders and quietens DCMTK's logger (its warnings go to stderr otherwise).
void initialize() {
    std::call_once(initOnce, [] {
        // UNIVERSEG_DCMTK_LOG=1 shows DCMTK's own warnings and errors (diagnostics only).
        OFLog::configure(getenv("UNIVERSEG_DCMTK_LOG") ? OFLogger::WARN_LOG_LEVEL : OFLogger::FATAL_LOG_LEVEL);
        DcmRLEDecoderRegistration::registerCodecs();
        DJDecoderRegistration::registerCodecs();
        DJLSDecoderRegistration::registerCodecs();
    });
}

int32_t fail(dcmshim_error *error, int32_t code, const char *format, ...) {
    if (error) {
        error->code = code;
        va_list args;
        va_start(args, format);
        vsnprintf(error->message, sizeof error->message, format, args);
        va_end(args);
    }
    return code;
}

/// Runs `body` and turns every C++ exception into an error code, so that nothing thrown crosses the
/// C API: out of memory is DCMSHIM_TOO_LARGE ("out of memory while <what>"), anything else
/// DCMSHIM_INVALID ("<failed> failed[: reason]").
template <typename Body> int32_t guarded(dcmshim_error *error, const char *what, const char *failed, Body body) {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return fail(error, DCMSHIM_TOO_LARGE, "out of memory while %s", what);
    } catch (const std::exception &e) {
        return fail(error, DCMSHIM_INVALID, "%s failed: %s", failed, e.what());
    } catch (...) {
        return fail(error, DCMSHIM_INVALID, "%s failed", failed);
    }
}

void copyString(char *dst, size_t cap, const OFString &src) {
    size_t n = std::min(cap - 1, (size_t)src.length());
    memcpy(dst, src.c_str(), n);
    dst[n] = 0;
}

/// Parses a Part-10 file (or a bare dataset) from memory. The stream knows its end, so an element whose
/// length runs past the buffer is an error before DCMTK allocates its value.
OFCondition parseBuffer(const uint8_t *bytes, size_t length, DcmFileFormat &file) {
    DcmInputBufferStream stream;
    stream.setBuffer(bytes, (offile_off_t)length);
    stream.setEos();
    file.transferInit();
    OFCondition cond = file.read(stream, EXS_Unknown, EGL_noChange, DCM_MaxReadLength);
    file.transferEnd();
    return cond;
}

bool getString(DcmItem *item, const DcmTagKey &key, OFString &value) {
    if (!item) return false;
    if (item->findAndGetOFStringArray(key, value, OFFalse).bad()) return false;
    // Trim surrounding spaces (DCMTK keeps them for some VRs).
    size_t b = value.find_first_not_of(' ');
    if (b == OFString_npos) { value.clear(); return false; }
    size_t e = value.find_last_not_of(' ');
    value = value.substr(b, e - b + 1);
    return !value.empty();
}

bool getInt(DcmItem *item, const DcmTagKey &key, long &value) {
    OFString text;
    if (!getString(item, key, text)) return false;
    char *end = nullptr;
    long v = strtol(text.c_str(), &end, 10);
    if (end == text.c_str()) return false;
    while (*end == ' ') end++;
    if (*end != 0) return false;
    value = v;
    return true;
}

bool getUS(DcmItem *item, const DcmTagKey &key, long &value) {
    Uint16 v = 0;
    if (!item || item->findAndGetUint16(key, v).bad()) return false;
    value = v;
    return true;
}

/// `count` numeric values (DS or FD) of `key`; false when absent or not numeric.
bool getDoubles(DcmItem *item, const DcmTagKey &key, double *out, int count) {
    if (!item) return false;
    for (int i = 0; i < count; i++) {
        Float64 v = 0;
        if (item->findAndGetFloat64(key, v, i).bad() || !std::isfinite(v)) return false;
        out[i] = v;
    }
    return true;
}

DcmItem *sequenceItem(DcmItem *item, const DcmTagKey &key, unsigned long index) {
    if (!item) return nullptr;
    DcmItem *result = nullptr;
    if (item->findAndGetSequenceItem(key, result, (signed long)index).bad()) return nullptr;
    return result;
}

/// Item `index` of the Per-frame Functional Groups Sequence, or null.
DcmItem *perFrameGroup(DcmItem *dataset, long index) {
    return sequenceItem(dataset, DCM_PerFrameFunctionalGroupsSequence, (unsigned long)index);
}

DcmItem *sharedGroup(DcmItem *dataset) { return sequenceItem(dataset, DCM_SharedFunctionalGroupsSequence, 0); }

/// The first item of the functional group `group` holding `key`, for frame `frame`: per-frame first, then shared.
DcmItem *functionalGroupItem(DcmItem *dataset, long frame, const DcmTagKey &group, const DcmTagKey &key) {
    DcmItem *candidates[2] = {perFrameGroup(dataset, frame), sharedGroup(dataset)};
    for (DcmItem *fg : candidates) {
        DcmItem *item = sequenceItem(fg, group, 0);
        if (item && item->tagExists(key)) return item;
    }
    return nullptr;
}

bool isNonImageSOPClass(const OFString &uid) {
    static const char *prefixes[] = {
        "1.2.840.10008.5.1.4.1.1.88.",   // Structured Reporting
        "1.2.840.10008.5.1.4.1.1.104.",  // Encapsulated documents (PDF, CDA, STL, ...)
        "1.2.840.10008.5.1.4.1.1.11.",   // Presentation States
        "1.2.840.10008.5.1.4.1.1.9.",    // Waveforms
        "1.2.840.10008.5.1.4.1.1.481.",  // RT objects
        "1.2.840.10008.5.1.4.1.1.66",    // Raw Data, Spatial Registration, Fiducials, Segmentation, Surfaces
        "1.2.840.10008.5.1.4.1.1.67",    // Real World Value Mapping
        "1.2.840.10008.5.1.4.1.1.68.",   // Surface Scan
    };
    for (const char *p : prefixes)
        if (uid.compare(0, strlen(p), p) == 0) return true;
    return false;
}

/// Why an encapsulated transfer syntax cannot be decoded, or null when one of the registered codecs handles it.
const char *unsupportedEncapsulation(const DcmXfer &xfer) {
    switch (xfer.getXfer()) {
    case EXS_RLELossless:
    case EXS_JPEGProcess1:
    case EXS_JPEGProcess2_4:
    case EXS_JPEGProcess14:
    case EXS_JPEGProcess14SV1:
    case EXS_JPEGLSLossless:
    case EXS_JPEGLSLossy:
        return nullptr;
    case EXS_JPEG2000LosslessOnly:
    case EXS_JPEG2000:
    case EXS_JPEG2000MulticomponentLosslessOnly:
    case EXS_JPEG2000Multicomponent:
        return "JPEG 2000 is not supported (DCMTK has no JPEG 2000 decoder)";
    default:
        return "this compressed transfer syntax is not supported";
    }
}

struct Limits {
    int64_t maxFrames, maxRows, maxColumns, maxPixelsPerFrame, maxInstanceBytes;
};

Limits readLimits(const dcmshim_limits *l) {
    Limits r{512, 8192, 8192, 40000000, 256ll << 20};
    if (l) r = Limits{l->max_frames, l->max_rows, l->max_columns, l->max_pixels_per_frame, l->max_instance_bytes};
    return r;
}

} // namespace

struct dcmshim_image {
    DcmFileFormat file;
    DcmDataset *dataset = nullptr;
    DcmPixelData *pixelData = nullptr;
    DcmPixelSequence *fragments = nullptr;  // encapsulated pixel data: the offset table item, then the fragments
    bool rle = false;
    dcmshim_info info{};
    OFString photometric;
    size_t bytesPerSample = 0;
    size_t frameBytes = 0;  // native layout of one frame
    double slope = 1, intercept = 0;
};

namespace {

/// Parses one Part-10 object from memory into `file` after the size checks every reader needs;
/// DCMSHIM_OK (0) or the error code.
int32_t parseInstance(const uint8_t *bytes, size_t length, const Limits &limits, DcmFileFormat &file, dcmshim_error *error) {
    if (length == 0) return fail(error, DCMSHIM_INVALID, "empty input");
    if ((int64_t)length > limits.maxInstanceBytes)
        return fail(error, DCMSHIM_TOO_LARGE, "instance of %zu bytes exceeds the limit of %lld bytes", length,
                    (long long)limits.maxInstanceBytes);
    OFCondition cond = parseBuffer(bytes, length, file);
    if (cond.bad()) return fail(error, DCMSHIM_INVALID, "not a readable DICOM object (%s)", cond.text());
    return DCMSHIM_OK;
}

int32_t openImage(const uint8_t *bytes, size_t length, const dcmshim_limits *limitsIn, dcmshim_image *img,
                  dcmshim_error *error) {
    Limits limits = readLimits(limitsIn);
    if (int32_t rc = parseInstance(bytes, length, limits, img->file, error)) return rc;
    DcmDataset *ds = img->file.getDataset();
    img->dataset = ds;
    dcmshim_info &info = img->info;

    OFString v;
    struct { const DcmTagKey key; char *dst; const char *name; } uids[] = {
        {DCM_SOPClassUID, info.sop_class_uid, "SOPClassUID"},
        {DCM_SOPInstanceUID, info.sop_instance_uid, "SOPInstanceUID"},
        {DCM_StudyInstanceUID, info.study_instance_uid, "StudyInstanceUID"},
        {DCM_SeriesInstanceUID, info.series_instance_uid, "SeriesInstanceUID"},
    };
    for (auto &u : uids) {
        if (!getString(ds, u.key, v)) return fail(error, DCMSHIM_INVALID, "missing %s", u.name);
        if (v.length() > 64) return fail(error, DCMSHIM_INVALID, "%s longer than 64 characters", u.name);
        copyString(u.dst, 68, v);
    }
    // A transfer syntax UID in the meta header that DCMTK does not know (a private one, or one newer than
    // this DCMTK such as HTJ2K): DCMTK then guesses the encoding from the bytes, but the pixel data may be
    // in any encoding, so the object is refused instead of decoded as if it were native.
    if (DcmMetaInfo *meta = img->file.getMetaInfo()) {
        OFString declared;
        if (getString(meta, DCM_TransferSyntaxUID, declared) && DcmXfer(declared.c_str()).getXfer() == EXS_Unknown)
            return fail(error, DCMSHIM_UNSUPPORTED, "transfer syntax %.64s is not supported", declared.c_str());
    }
    DcmXfer xfer(ds->getOriginalXfer());
    if (xfer.getXfer() == EXS_Unknown) return fail(error, DCMSHIM_INVALID, "unknown transfer syntax");
    copyString(info.transfer_syntax_uid, 68, xfer.getXferID());
    if (getString(ds, DCM_Modality, v)) { copyString(info.modality, sizeof info.modality, v); info.has_modality = 1; }
    if (getString(ds, DCM_FrameOfReferenceUID, v) && v.length() <= 64) {
        copyString(info.frame_of_reference_uid, 68, v);
        info.has_frame_of_reference = 1;
    }
    long number = 0;
    if (getInt(ds, DCM_InstanceNumber, number) && number >= INT32_MIN && number <= INT32_MAX) {
        info.instance_number = (int32_t)number;
        info.has_instance_number = 1;
    }

    if (ds->tagExists(DCM_FloatPixelData) || ds->tagExists(DCM_DoubleFloatPixelData))
        return fail(error, DCMSHIM_UNSUPPORTED, "float pixel data is not supported");
    DcmElement *pixelElement = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, pixelElement).bad() || !pixelElement) {
        if (isNonImageSOPClass(OFString(info.sop_class_uid)))
            return fail(error, DCMSHIM_UNSUPPORTED, "SOP class %s is not an image", info.sop_class_uid);
        return fail(error, DCMSHIM_INVALID, "missing PixelData");
    }
    if (pixelElement->ident() != EVR_PixelData) return fail(error, DCMSHIM_INVALID, "malformed PixelData");
    img->pixelData = static_cast<DcmPixelData *>(pixelElement);

    long rows = 0, columns = 0, frames = 1, spp = 1, bitsAllocated = 0, bitsStored = 0, highBit = -1,
         pixelRepresentation = 0, planar = 0;
    if (!getUS(ds, DCM_Rows, rows) || rows <= 0) return fail(error, DCMSHIM_INVALID, "missing or zero Rows");
    if (!getUS(ds, DCM_Columns, columns) || columns <= 0)
        return fail(error, DCMSHIM_INVALID, "missing or zero Columns");
    if (ds->tagExists(DCM_NumberOfFrames) && (!getInt(ds, DCM_NumberOfFrames, frames) || frames <= 0))
        return fail(error, DCMSHIM_INVALID, "NumberOfFrames is not a positive integer");
    if (rows > limits.maxRows) return fail(error, DCMSHIM_TOO_LARGE, "Rows %ld exceed the limit %lld", rows, (long long)limits.maxRows);
    if (columns > limits.maxColumns)
        return fail(error, DCMSHIM_TOO_LARGE, "Columns %ld exceed the limit %lld", columns, (long long)limits.maxColumns);
    if (frames > limits.maxFrames)
        return fail(error, DCMSHIM_TOO_LARGE, "NumberOfFrames %ld exceeds the limit %lld", frames, (long long)limits.maxFrames);
    if ((int64_t)rows * columns > limits.maxPixelsPerFrame)
        return fail(error, DCMSHIM_TOO_LARGE, "%ld x %ld pixels per frame exceed the limit %lld", rows, columns,
                    (long long)limits.maxPixelsPerFrame);
    if (ds->tagExists(DCM_SamplesPerPixel) && !getUS(ds, DCM_SamplesPerPixel, spp))
        return fail(error, DCMSHIM_INVALID, "malformed SamplesPerPixel");
    if (!getUS(ds, DCM_BitsAllocated, bitsAllocated)) return fail(error, DCMSHIM_INVALID, "missing BitsAllocated");
    if (!getUS(ds, DCM_BitsStored, bitsStored)) bitsStored = bitsAllocated;
    if (!getUS(ds, DCM_HighBit, highBit)) highBit = bitsStored - 1;
    if (ds->tagExists(DCM_PixelRepresentation) && !getUS(ds, DCM_PixelRepresentation, pixelRepresentation))
        return fail(error, DCMSHIM_INVALID, "malformed PixelRepresentation");
    if (ds->tagExists(DCM_PlanarConfiguration)) getUS(ds, DCM_PlanarConfiguration, planar);
    if (!getString(ds, DCM_PhotometricInterpretation, img->photometric))
        return fail(error, DCMSHIM_INVALID, "missing PhotometricInterpretation");
    copyString(info.photometric, sizeof info.photometric, img->photometric);

    if (bitsAllocated != 8 && bitsAllocated != 16 && bitsAllocated != 32)
        return fail(error, DCMSHIM_UNSUPPORTED, "BitsAllocated %ld is not supported (8, 16 or 32)", bitsAllocated);
    if (bitsStored < 1 || bitsStored > bitsAllocated || highBit < bitsStored - 1 || highBit >= bitsAllocated)
        return fail(error, DCMSHIM_INVALID, "inconsistent BitsStored %ld / HighBit %ld / BitsAllocated %ld", bitsStored,
                    highBit, bitsAllocated);
    if (pixelRepresentation != 0 && pixelRepresentation != 1)
        return fail(error, DCMSHIM_INVALID, "PixelRepresentation %ld is neither 0 nor 1", pixelRepresentation);
    const OFString &pi = img->photometric;
    bool mono = pi == "MONOCHROME1" || pi == "MONOCHROME2";
    bool color = pi == "RGB" || pi == "YBR_FULL" || pi == "YBR_FULL_422";
    if (!mono && !color)
        return fail(error, DCMSHIM_UNSUPPORTED, "PhotometricInterpretation %s is not supported", pi.c_str());
    if ((mono && spp != 1) || (color && spp != 3))
        return fail(error, DCMSHIM_INVALID, "SamplesPerPixel %ld does not match %s", spp, pi.c_str());
    if (color && bitsAllocated != 8 && bitsAllocated != 16)
        return fail(error, DCMSHIM_UNSUPPORTED, "colour with BitsAllocated %ld is not supported", bitsAllocated);
    if (pi == "YBR_FULL_422" && columns % 2 != 0)
        return fail(error, DCMSHIM_INVALID, "YBR_FULL_422 with an odd number of columns");

    img->bytesPerSample = (size_t)bitsAllocated / 8;
    size_t samplesPerFrame = (size_t)rows * (size_t)columns * (size_t)spp;
    bool encapsulated = xfer.isEncapsulated();
    // Native YBR_FULL_422 stores two samples per pixel (Y1 Y2 Cb Cr per pair).
    if (!encapsulated && pi == "YBR_FULL_422") samplesPerFrame = (size_t)rows * (size_t)columns * 2;
    img->frameBytes = samplesPerFrame * img->bytesPerSample;
    // Rows x Columns x Frames bombs: each limit kept, the whole far beyond any instance allowed (native
    // pixel data must fit in dicom.max_instance_bytes; compressed pixel data may decode to 4 times that).
    unsigned __int128 declared = (unsigned __int128)img->frameBytes * (unsigned __int128)frames;
    unsigned __int128 bound = (unsigned __int128)limits.maxInstanceBytes * (encapsulated ? 4u : 1u);
    if (declared > bound)
        return fail(error, DCMSHIM_TOO_LARGE, "%ld frames of %ld x %ld declare %llu bytes of pixel data, above the limit of %llu",
                    frames, rows, columns, (unsigned long long)declared, (unsigned long long)bound);

    if (encapsulated) {
        if (const char *why = unsupportedEncapsulation(xfer)) return fail(error, DCMSHIM_UNSUPPORTED, "%s", why);
        DcmPixelSequence *sequence = nullptr;
        E_TransferSyntax original = EXS_Unknown;
        const DcmRepresentationParameter *param = nullptr;
        img->pixelData->getOriginalRepresentationKey(original, param);
        if (img->pixelData->getEncapsulatedRepresentation(original, param, sequence).bad() || !sequence)
            return fail(error, DCMSHIM_INVALID, "compressed transfer syntax without encapsulated PixelData");
        unsigned long fragments = sequence->card();
        if (fragments < 2) return fail(error, DCMSHIM_INVALID, "encapsulated PixelData without fragments");
        if ((unsigned long)frames > fragments - 1)
            return fail(error, DCMSHIM_INVALID, "%ld frames but only %lu compressed fragments", frames, fragments - 1);
        img->rle = xfer.getXfer() == EXS_RLELossless;
        // RLE Lossless encodes each frame in exactly one fragment (PS3.5 A.4.2), and DCMTK's frame decoder reads
        // only that one.
        if (img->rle && (unsigned long)frames != fragments - 1)
            return fail(error, DCMSHIM_INVALID, "RLE with %ld frames in %lu fragments (one fragment per frame)", frames,
                        fragments - 1);
        img->fragments = sequence;
    } else {
        unsigned __int128 needed = (unsigned __int128)img->frameBytes * (unsigned __int128)frames;
        Uint32 have = img->pixelData->getLength();
        if (have == DCM_UndefinedLength || (unsigned __int128)have < needed)
            return fail(error, DCMSHIM_INVALID, "PixelData holds %lu bytes but the header needs %llu", (unsigned long)have,
                        (unsigned long long)needed);
    }

    info.rows = (int32_t)rows;
    info.columns = (int32_t)columns;
    info.frames = (int32_t)frames;
    info.samples_per_pixel = (int32_t)spp;
    info.bits_allocated = (int32_t)bitsAllocated;
    info.bits_stored = (int32_t)bitsStored;
    info.high_bit = (int32_t)highBit;
    info.pixel_representation = (int32_t)pixelRepresentation;
    info.planar_configuration = (int32_t)planar;
    info.encapsulated = encapsulated ? 1 : 0;

    // Geometry: top level first, then the shared and the first per-frame functional groups.
    if (getDoubles(ds, DCM_ImageOrientationPatient, info.orientation, 6)) info.has_orientation = 1;
    else if (getDoubles(functionalGroupItem(ds, 0, DCM_PlaneOrientationSequence, DCM_ImageOrientationPatient),
                        DCM_ImageOrientationPatient, info.orientation, 6))
        info.has_orientation = 1;
    if (getDoubles(ds, DCM_PixelSpacing, info.pixel_spacing, 2)) info.has_pixel_spacing = 1;
    else if (getDoubles(functionalGroupItem(ds, 0, DCM_PixelMeasuresSequence, DCM_PixelSpacing), DCM_PixelSpacing,
                        info.pixel_spacing, 2))
        info.has_pixel_spacing = 1;
    if (getDoubles(ds, DCM_SliceThickness, &info.slice_thickness, 1)) info.has_slice_thickness = 1;
    else if (getDoubles(functionalGroupItem(ds, 0, DCM_PixelMeasuresSequence, DCM_SliceThickness), DCM_SliceThickness,
                        &info.slice_thickness, 1))
        info.has_slice_thickness = 1;
    double slope = 1, intercept = 0;
    if (getDoubles(ds, DCM_RescaleSlope, &slope, 1)) img->slope = slope;
    if (getDoubles(ds, DCM_RescaleIntercept, &intercept, 1)) img->intercept = intercept;
    return DCMSHIM_OK;
}

/// Checks the RLE header of `frame`'s fragment (PS3.5 G.5: a segment count, then 15 little-endian segment
/// offsets from the start of the fragment, the first 64) against the fragment. DCMTK 3.6.7's frame decoder
/// feeds the bytes between those offsets to its RLE decoder unchecked: an offset past the fragment makes it
/// read outside the buffer. `startFragment` is set to the fragment's item index.
int32_t checkRLEFrame(const dcmshim_image &image, int32_t frame, Uint32 &startFragment, dcmshim_error *error) {
    DcmPixelItem *item = nullptr;
    Uint8 *data = nullptr;
    const Uint32 index = (Uint32)frame + 1;  // item 0 is the basic offset table
    if (!image.fragments || image.fragments->getItem(item, index).bad() || !item || item->getUint8Array(data).bad())
        return fail(error, DCMSHIM_INVALID, "RLE fragment of frame %d is missing", frame);
    const Uint32 length = item->getLength();
    if (!data || length < 64 || length == DCM_UndefinedLength)
        return fail(error, DCMSHIM_INVALID, "RLE fragment of frame %d is shorter than its 64-byte header", frame);
    uint32_t header[16];
    for (int i = 0; i < 16; i++)
        header[i] = (uint32_t)data[4 * i] | (uint32_t)data[4 * i + 1] << 8 | (uint32_t)data[4 * i + 2] << 16 |
                    (uint32_t)data[4 * i + 3] << 24;
    const uint32_t expected = (uint32_t)image.info.samples_per_pixel * (uint32_t)image.bytesPerSample;
    if (header[0] != expected)
        return fail(error, DCMSHIM_INVALID, "RLE header of frame %d declares %u segments, %u expected", frame, header[0],
                    expected);
    if (header[1] != 64) return fail(error, DCMSHIM_INVALID, "RLE header of frame %d: first segment not at byte 64", frame);
    for (uint32_t s = 1; s <= header[0]; s++) {
        const uint32_t end = s == header[0] ? length : header[s + 1];
        if (header[s] >= end || end > length)
            return fail(error, DCMSHIM_INVALID, "RLE header of frame %d: segment %u lies outside the fragment", frame, s);
    }
    startFragment = index;
    return DCMSHIM_OK;
}

inline uint32_t loadSample(const uint8_t *p, size_t bytes) {
    switch (bytes) {
    case 1: return p[0];
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    default: { uint32_t v; memcpy(&v, p, 4); return v; }
    }
}

struct SampleDecoder {
    int shift;
    uint32_t mask;
    int bitsStored;
    bool isSigned;
    int64_t value(uint32_t raw) const {
        uint32_t v = (raw >> shift) & mask;
        if (isSigned && (v >> (bitsStored - 1)) & 1u) return (int64_t)v - ((int64_t)1 << bitsStored);
        return (int64_t)v;
    }
};

} // namespace

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_image_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits,
                                      dcmshim_image **out, dcmshim_error *error) {
    if (out) *out = nullptr;
    return guarded(error, "parsing", "parse", [&]() -> int32_t {
        initialize();
        std::unique_ptr<dcmshim_image> img(new dcmshim_image());
        int32_t rc = openImage(bytes, length, limits, img.get(), error);
        if (rc != DCMSHIM_OK) return rc;
        *out = img.release();
        return DCMSHIM_OK;
    });
}

extern "C" DCMSHIM_EXPORT void dcmshim_impl_image_close(dcmshim_image *image) { delete image; }

extern "C" DCMSHIM_EXPORT void dcmshim_impl_image_info(const dcmshim_image *image, dcmshim_info *info) {
    if (image && info) *info = image->info;
}

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_image_position(const dcmshim_image *image, int32_t frame, double out[3]) {
    try {
        if (!image || frame < 0 || frame >= image->info.frames) return 0;
        DcmDataset *ds = image->dataset;
        if (getDoubles(functionalGroupItem(ds, frame, DCM_PlanePositionSequence, DCM_ImagePositionPatient),
                       DCM_ImagePositionPatient, out, 3))
            return 1;
        if (image->info.frames == 1 && getDoubles(ds, DCM_ImagePositionPatient, out, 3)) return 1;
        return 0;
    } catch (...) {
        return 0;
    }
}

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_image_frame(dcmshim_image *image, int32_t frame, float *out, size_t count,
                                       dcmshim_error *error) {
    return guarded(error, "decoding", "decode", [&]() -> int32_t {
        if (!image) return fail(error, DCMSHIM_INVALID, "no image");
        const dcmshim_info &info = image->info;
        if (frame < 0 || frame >= info.frames)
            return fail(error, DCMSHIM_INVALID, "frame %d out of range 0..<%d", frame, info.frames);
        const size_t pixels = (size_t)info.rows * (size_t)info.columns;
        if (count < pixels) return fail(error, DCMSHIM_INVALID, "output buffer too small");
        const size_t bps = image->bytesPerSample;

        std::vector<uint8_t> decoded;
        const uint8_t *data = nullptr;
        OFString colorModel = image->photometric;
        if (info.encapsulated) {
            size_t size = pixels * (size_t)info.samples_per_pixel * bps;
            if (size % 2) size++;
            if (size > 0xFFFFFFF0u) return fail(error, DCMSHIM_TOO_LARGE, "frame too large to decode");
            decoded.resize(size);
            Uint32 startFragment = 0;
            if (image->rle)
                if (int32_t rc = checkRLEFrame(*image, frame, startFragment, error)) return rc;
            OFCondition cond = image->pixelData->getUncompressedFrame(image->dataset, (Uint32)frame, startFragment,
                                                                      decoded.data(), (Uint32)size, colorModel);
            if (cond.bad()) return fail(error, DCMSHIM_INVALID, "cannot decompress frame %d (%s)", frame, cond.text());
            data = decoded.data();
        } else {
            Uint8 *all = nullptr;
            if (image->pixelData->getUint8Array(all).bad() || !all)
                return fail(error, DCMSHIM_INVALID, "cannot access PixelData");
            data = all + (size_t)frame * image->frameBytes;
        }

        SampleDecoder dec{info.high_bit + 1 - info.bits_stored,
                          info.bits_stored >= 32 ? 0xFFFFFFFFu : ((1u << info.bits_stored) - 1u), info.bits_stored,
                          info.pixel_representation == 1};
        if (info.samples_per_pixel == 1) {
            double slope = image->slope, intercept = image->intercept, v = 0;
            DcmItem *transform = functionalGroupItem(image->dataset, frame, DCM_PixelValueTransformationSequence,
                                                     DCM_RescaleSlope);
            if (getDoubles(transform, DCM_RescaleSlope, &v, 1)) slope = v;
            transform = functionalGroupItem(image->dataset, frame, DCM_PixelValueTransformationSequence,
                                            DCM_RescaleIntercept);
            if (getDoubles(transform, DCM_RescaleIntercept, &v, 1)) intercept = v;
            const bool invert = image->photometric == "MONOCHROME1";
            // Inverting within the stored range (min + max - s) keeps values in the stored domain.
            const int64_t minMax = dec.isSigned ? -1 : (int64_t)dec.mask;
            for (size_t i = 0; i < pixels; i++) {
                int64_t s = dec.value(loadSample(data + i * bps, bps));
                if (invert) s = minMax - s;
                out[i] = (float)((double)s * slope + intercept);
            }
            return DCMSHIM_OK;
        }
        // Colour: luminance (BT.601) of RGB; Y of YBR.
        const bool planar = info.planar_configuration == 1;
        if (colorModel == "YBR_FULL_422" && !info.encapsulated) {
            for (size_t i = 0; i < pixels; i++) {
                size_t pair = i / 2, which = i % 2;
                out[i] = (float)dec.value(loadSample(data + (pair * 4 + which) * bps, bps));
            }
            return DCMSHIM_OK;
        }
        const bool ybr = colorModel.compare(0, 3, "YBR") == 0;
        for (size_t i = 0; i < pixels; i++) {
            size_t i0 = planar ? i : i * 3, i1 = planar ? pixels + i : i * 3 + 1, i2 = planar ? 2 * pixels + i : i * 3 + 2;
            double c0 = (double)dec.value(loadSample(data + i0 * bps, bps));
            if (ybr) { out[i] = (float)c0; continue; }
            double c1 = (double)dec.value(loadSample(data + i1 * bps, bps));
            double c2 = (double)dec.value(loadSample(data + i2 * bps, bps));
            out[i] = (float)(0.299 * c0 + 0.587 * c1 + 0.114 * c2);
        }
        return DCMSHIM_OK;
    });
}

extern "C" DCMSHIM_EXPORT void dcmshim_impl_free(void *pointer) { free(pointer); }

// MARK: - Segmentation writing

namespace {

OFString formatDouble(double v) {
    char buffer[32];
    // DS holds at most 16 characters.
    for (int precision = 10; precision > 0; precision--) {
        snprintf(buffer, sizeof buffer, "%.*g", precision, v);
        if (strlen(buffer) <= 16) break;
    }
    return OFString(buffer);
}

/// Sets SpatialLocationsPreserved (0028,135A) = YES in every Source Image Sequence item of the per-frame groups:
/// the segmentation frames have the geometry of the frames they were computed from (DCMTK 3.6.7 has no setter).
void markSpatialLocationsPreserved(DcmDataset *ds) {
    DcmSequenceOfItems *perFrame = nullptr;
    if (ds->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, perFrame).bad() || !perFrame) return;
    for (unsigned long f = 0; f < perFrame->card(); f++) {
        DcmItem *fg = perFrame->getItem(f);
        DcmSequenceOfItems *derivation = nullptr;
        if (!fg || fg->findAndGetSequence(DCM_DerivationImageSequence, derivation).bad() || !derivation) continue;
        for (unsigned long d = 0; d < derivation->card(); d++) {
            DcmSequenceOfItems *sources = nullptr;
            DcmItem *di = derivation->getItem(d);
            if (!di || di->findAndGetSequence(DCM_SourceImageSequence, sources).bad() || !sources) continue;
            for (unsigned long s = 0; s < sources->card(); s++)
                if (DcmItem *si = sources->getItem(s)) si->putAndInsertString(DCM_SpatialLocationsPreserved, "YES");
        }
    }
}

/// Writes `file` as a Part-10 object (explicit VR little endian) into `out` (malloc'ed).
OFCondition writeToMemory(DcmFileFormat &file, std::vector<uint8_t> &out) {
    const E_TransferSyntax xfer = EXS_LittleEndianExplicit;
    std::vector<uint8_t> chunk(1 << 20);
    DcmOutputBufferStream stream(chunk.data(), (offile_off_t)chunk.size());
    file.transferInit();
    OFCondition cond = EC_StreamNotifyClient;
    while (cond == EC_StreamNotifyClient) {
        cond = file.write(stream, xfer, EET_ExplicitLength, nullptr, EGL_recalcGL, EPD_noChange, 0, 0, 0,
                          EWM_createNewMeta);
        void *buffer = nullptr;
        offile_off_t length = 0;
        stream.flushBuffer(buffer, length);
        out.insert(out.end(), (uint8_t *)buffer, (uint8_t *)buffer + length);
    }
    file.transferEnd();
    if (cond.bad()) return cond;
    stream.flush();
    void *buffer = nullptr;
    offile_off_t length = 0;
    stream.flushBuffer(buffer, length);
    out.insert(out.end(), (uint8_t *)buffer, (uint8_t *)buffer + length);
    return EC_Normal;
}

#define CHECK(expr, what)                                                                                        \
    do {                                                                                                         \
        OFCondition _c = (expr);                                                                                 \
        if (_c.bad()) return fail(error, DCMSHIM_INVALID, "%s failed (%s)", what, _c.text());                   \
    } while (0)

int32_t writeSegmentation(const dcmshim_buffer *sources, size_t sourceCount, const dcmshim_seg_input_frame *frames,
                          size_t frameCount, const dcmshim_seg_geometry *geometry, const dcmshim_seg_description *d,
                          dcmshim_seg_output *output, dcmshim_error *error) {
    if (sourceCount == 0 || frameCount == 0) return fail(error, DCMSHIM_INVALID, "no sources or no frames");
    if (geometry->rows <= 0 || geometry->columns <= 0 || geometry->rows > 65535 || geometry->columns > 65535)
        return fail(error, DCMSHIM_INVALID, "invalid segmentation size");
    std::vector<std::unique_ptr<DcmFileFormat>> files;
    for (size_t i = 0; i < sourceCount; i++) {
        std::unique_ptr<DcmFileFormat> file(new DcmFileFormat());
        OFCondition cond = parseBuffer(sources[i].bytes, sources[i].length, *file);
        if (cond.bad()) return fail(error, DCMSHIM_INVALID, "source %zu is not readable (%s)", i, cond.text());
        files.push_back(std::move(file));
    }
    DcmDataset *first = files[0]->getDataset();

    IODGeneralEquipmentModule::EquipmentInfo equipment(d->manufacturer, d->manufacturer_model_name,
                                                       d->device_serial_number, d->software_versions);
    ContentIdentificationMacro content("1", "SEGMENTATION", d->series_description, "");
    DcmSegmentation *created = nullptr;
    CHECK(DcmSegmentation::createBinarySegmentation(created, (Uint16)geometry->rows, (Uint16)geometry->columns,
                                                    equipment, content),
          "creating the segmentation");
    std::unique_ptr<DcmSegmentation> seg(created);
    CHECK(seg->importFromSourceImage(*first, OFTrue), "importing patient and study from the first source");

    OFString seriesUID;
    if (d->series_instance_uid && *d->series_instance_uid) seriesUID = d->series_instance_uid;
    else {
        char buffer[100];
        seriesUID = dcmGenerateUniqueIdentifier(buffer, SITE_SERIES_UID_ROOT);
    }
    CHECK(seg->getSeries().setSeriesInstanceUID(seriesUID), "setting SeriesInstanceUID");
    CHECK(seg->getSegmentationSeriesModule().setSeriesNumber(OFString(std::to_string(d->series_number).c_str())),
          "setting SeriesNumber");
    if (d->series_description && *d->series_description)
        CHECK(seg->getSeries().setSeriesDescription(d->series_description), "setting SeriesDescription");

    OFString value;
    const bool hasFrameOfReference = getString(first, DCM_FrameOfReferenceUID, value);
    if (!hasFrameOfReference) {
        // The Frame of Reference Module is conditional in the Segmentation IOD, but dcmiod treats its UID as
        // Type 1; without a source FoR the rules are relaxed so that the module is left out (see also below).
        OFshared_ptr<IODRules> rules = seg->getFrameOfReference().getRules();
        if (IODRule *rule = rules->getByTag(DCM_FrameOfReferenceUID)) rule->setType("3");
        if (IODRule *rule = rules->getByTag(DCM_PositionReferenceIndicator)) rule->setType("3");
    }
    if (!geometry->use_positions) {
        // Type 2C in the General Image Module when there is no Frame of Reference.
        getString(first, DCM_PatientOrientation, value);
        CHECK(seg->getGeneralImage().setPatientOrientation(value, OFFalse), "setting PatientOrientation");
    }

    // The segment.
    DcmSegment *segment = nullptr;
    CodeSequenceMacro category("91723000", "SCT", "Anatomical Structure");
    CodeSequenceMacro type("85756007", "SCT", "Tissue");
    CHECK(DcmSegment::create(segment, d->segment_label, category, type, DcmSegTypes::SAT_AUTOMATIC, d->algorithm_name),
          "creating the segment");
    std::unique_ptr<DcmSegment> segmentOwner(segment);
    AlgorithmIdentificationMacro &algorithm = segment->getSegmentationAlgorithmIdentification();
    CHECK(algorithm.getAlgorithmFamilyCode().set("123110", "DCM", "Artificial Intelligence"), "setting the algorithm family");
    CHECK(algorithm.setAlgorithmName(d->algorithm_name), "setting AlgorithmName");
    CHECK(algorithm.setAlgorithmVersion(d->algorithm_version), "setting AlgorithmVersion");
    Uint16 segmentNumber = 0;
    CHECK(seg->addSegment(segment, segmentNumber), "adding the segment");
    segmentOwner.release();

    // Shared functional groups.
    if (geometry->has_pixel_spacing) {
        FGPixelMeasures measures;
        OFString spacing = formatDouble(geometry->pixel_spacing[0]) + "\\" + formatDouble(geometry->pixel_spacing[1]);
        CHECK(measures.setPixelSpacing(spacing), "setting PixelSpacing");
        if (geometry->has_slice_thickness)
            CHECK(measures.setSliceThickness(formatDouble(geometry->slice_thickness)), "setting SliceThickness");
        CHECK(seg->addForAllFrames(measures), "adding PixelMeasures");
    }
    if (geometry->use_positions && geometry->has_orientation) {
        const double *o = geometry->orientation;
        std::unique_ptr<FGPlaneOrientationPatient> orientation(FGPlaneOrientationPatient::createMinimal(
            formatDouble(o[0]), formatDouble(o[1]), formatDouble(o[2]), formatDouble(o[3]), formatDouble(o[4]),
            formatDouble(o[5])));
        if (!orientation) return fail(error, DCMSHIM_INVALID, "invalid ImageOrientationPatient");
        CHECK(seg->addForAllFrames(*orientation), "adding PlaneOrientation");
    }

    // Dimensions: segment number, then position along the slice normal.
    char dimensionUID[100];
    dcmGenerateUniqueIdentifier(dimensionUID, SITE_INSTANCE_UID_ROOT);
    IODMultiframeDimensionModule &dimensions = seg->getDimensions();
    CHECK(dimensions.addDimensionIndex(DCM_ReferencedSegmentNumber, dimensionUID, DCM_SegmentIdentificationSequence,
                                       "ReferencedSegmentNumber"),
          "adding the segment dimension");
    std::vector<Uint32> positionIndex(frameCount, 1);
    if (geometry->use_positions) {
        CHECK(dimensions.addDimensionIndex(DCM_ImagePositionPatient, dimensionUID, DCM_PlanePositionSequence,
                                           "ImagePositionPatient"),
              "adding the position dimension");
        double normal[3] = {0, 0, 1};
        if (geometry->has_orientation) {
            const double *o = geometry->orientation;
            normal[0] = o[1] * o[5] - o[2] * o[4];
            normal[1] = o[2] * o[3] - o[0] * o[5];
            normal[2] = o[0] * o[4] - o[1] * o[3];
        }
        std::vector<double> distance(frameCount);
        for (size_t i = 0; i < frameCount; i++) {
            const double *p = frames[i].position;
            distance[i] = p[0] * normal[0] + p[1] * normal[1] + p[2] * normal[2];
        }
        std::vector<double> distinct(distance);
        std::sort(distinct.begin(), distinct.end());
        std::vector<double> unique;
        for (double v : distinct)
            if (unique.empty() || std::fabs(v - unique.back()) > 1e-4) unique.push_back(v);
        for (size_t i = 0; i < frameCount; i++) {
            size_t k = 0;
            while (k + 1 < unique.size() && std::fabs(distance[i] - unique[k]) > 1e-4) k++;
            positionIndex[i] = (Uint32)(k + 1);
        }
    }

    // Frames.
    IODReferences references;
    std::vector<bool> referenced(sourceCount, false);
    std::vector<Uint8> mask((size_t)geometry->rows * (size_t)geometry->columns);
    for (size_t i = 0; i < frameCount; i++) {
        const dcmshim_seg_input_frame &f = frames[i];
        if (f.source < 0 || (size_t)f.source >= sourceCount) return fail(error, DCMSHIM_INVALID, "frame %zu: bad source", i);
        DcmDataset *source = files[(size_t)f.source]->getDataset();
        OFString classUID, instanceUID;
        getString(source, DCM_SOPClassUID, classUID);
        getString(source, DCM_SOPInstanceUID, instanceUID);
        for (size_t k = 0; k < mask.size(); k++) mask[k] = f.mask[k] ? 1 : 0;

        OFVector<FGBase *> groups;
        std::unique_ptr<FGPlanePosPatient> position;
        if (geometry->use_positions) {
            position.reset(FGPlanePosPatient::createMinimal(formatDouble(f.position[0]), formatDouble(f.position[1]),
                                                            formatDouble(f.position[2])));
            if (!position) return fail(error, DCMSHIM_INVALID, "frame %zu: invalid position", i);
            groups.push_back(position.get());
        }
        FGFrameContent frameContent;
        CHECK(frameContent.setDimensionIndexValues(segmentNumber, 0), "setting DimensionIndexValues");
        if (geometry->use_positions)
            CHECK(frameContent.setDimensionIndexValues(positionIndex[i], 1), "setting DimensionIndexValues");
        groups.push_back(&frameContent);

        ImageSOPInstanceReferenceMacro *reference = nullptr;
        CHECK(ImageSOPInstanceReferenceMacro::create(classUID, instanceUID, reference),
              "creating the source image reference");
        std::unique_ptr<ImageSOPInstanceReferenceMacro> referenceOwner(reference);
        if (f.source_is_multiframe)
            CHECK(reference->addReferencedFrameNumber((Uint16)(f.source_frame + 1)), "setting ReferencedFrameNumber");
        OFVector<ImageSOPInstanceReferenceMacro> derivationImages;
        derivationImages.push_back(*reference);
        std::unique_ptr<FGDerivationImage> derivation(DcmSegmentation::createDerivationImageFG(derivationImages, ""));
        if (!derivation) return fail(error, DCMSHIM_INVALID, "frame %zu: cannot create the derivation image group", i);
        groups.push_back(derivation.get());
        CHECK(seg->addFrame(mask.data(), segmentNumber, groups), "adding a frame");

        if (!referenced[(size_t)f.source]) {
            referenced[(size_t)f.source] = true;
            OFString patientID, studyUID, seriesUIDSource;
            getString(source, DCM_PatientID, patientID);
            getString(source, DCM_StudyInstanceUID, studyUID);
            getString(source, DCM_SeriesInstanceUID, seriesUIDSource);
            references.add(new IODImageReference(patientID, studyUID, seriesUIDSource, instanceUID, classUID));
        }
    }
    seg->getCommonInstanceReference().addReferences(references);

    DcmFileFormat file;
    CHECK(seg->writeDataset(*file.getDataset()), "writing the segmentation");
    markSpatialLocationsPreserved(file.getDataset());
    {
        // PatientOrientation (General Image, Type 2C) is left out by dcmiod when the source's
        // value is empty or absent, but a SEG without plane geometry needs it, empty if unknown.
        // Laterality (General Series, Type 2C: only for a paired body part) is copied only when
        // the source has a value: an empty one where the condition does not hold is an error to
        // dciodvfy ("present when condition unsatisfied").
        DcmDataset *out = file.getDataset();
        if (!geometry->use_positions && !out->tagExists(DCM_PatientOrientation)) {
            OFString orientation;
            getString(first, DCM_PatientOrientation, orientation);
            CHECK(out->putAndInsertString(DCM_PatientOrientation, orientation.c_str()), "setting PatientOrientation");
        }
        if (!geometry->use_positions && !out->tagExists(DCM_Laterality)) {
            OFString laterality;
            getString(first, DCM_Laterality, laterality);
            if (!laterality.empty()) {
                CHECK(out->putAndInsertString(DCM_Laterality, laterality.c_str()), "setting Laterality");
            }
        }
    }
    // A caller-chosen SOP Instance UID (derived from the request, so that a redelivered request
    // stores the same instance again); the file meta information is made from the dataset.
    if (d->sop_instance_uid && *d->sop_instance_uid)
        CHECK(file.getDataset()->putAndInsertString(DCM_SOPInstanceUID, d->sop_instance_uid), "setting SOPInstanceUID");
    std::vector<uint8_t> bytes;
    CHECK(writeToMemory(file, bytes), "encoding the segmentation");
    DcmDataset *out = file.getDataset();
    getString(out, DCM_SOPInstanceUID, value);
    copyString(output->sop_instance_uid, 68, value);
    getString(out, DCM_SeriesInstanceUID, value);
    copyString(output->series_instance_uid, 68, value);
    getString(out, DCM_StudyInstanceUID, value);
    copyString(output->study_instance_uid, 68, value);
    output->bytes = (uint8_t *)malloc(bytes.size() ? bytes.size() : 1);
    if (!output->bytes) return fail(error, DCMSHIM_TOO_LARGE, "out of memory");
    memcpy(output->bytes, bytes.data(), bytes.size());
    output->length = bytes.size();
    return DCMSHIM_OK;
}

} // namespace

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_seg_write(const dcmshim_buffer *sources, size_t source_count, const dcmshim_seg_input_frame *frames,
                                     size_t frame_count, const dcmshim_seg_geometry *geometry,
                                     const dcmshim_seg_description *description, dcmshim_seg_output *output,
                                     dcmshim_error *error) {
    return guarded(error, "writing the segmentation", "segmentation writing", [&]() -> int32_t {
        initialize();
        if (!sources || !frames || !geometry || !description || !output)
            return fail(error, DCMSHIM_INVALID, "missing argument");
        output->bytes = nullptr;
        output->length = 0;
        return writeSegmentation(sources, source_count, frames, frame_count, geometry, description, output, error);
    });
}

// MARK: - Segmentation reading

struct dcmshim_seg {
    DcmFileFormat file;
    DcmDataset *dataset = nullptr;
    int32_t rows = 0, columns = 0, frames = 0;
    bool fractional = false;
    long maxFractional = 255;
    const Uint8 *pixels = nullptr;
    struct Segment { int32_t number; OFString label; };
    std::vector<Segment> segments;
};

namespace {

int32_t openSegmentation(const uint8_t *bytes, size_t length, const dcmshim_limits *limitsIn, dcmshim_seg *seg,
                         dcmshim_error *error) {
    Limits limits = readLimits(limitsIn);
    if (int32_t rc = parseInstance(bytes, length, limits, seg->file, error)) return rc;
    DcmDataset *ds = seg->file.getDataset();
    seg->dataset = ds;
    OFString value;
    if (!getString(ds, DCM_SOPClassUID, value)) return fail(error, DCMSHIM_INVALID, "missing SOPClassUID");
    if (value != UID_SegmentationStorage) return fail(error, DCMSHIM_UNSUPPORTED, "not a Segmentation (SOP class %s)", value.c_str());
    if (!getString(ds, DCM_SegmentationType, value)) return fail(error, DCMSHIM_INVALID, "missing SegmentationType");
    long bitsAllocated = 0, rows = 0, columns = 0, frames = 1;
    if (!getUS(ds, DCM_BitsAllocated, bitsAllocated)) return fail(error, DCMSHIM_INVALID, "missing BitsAllocated");
    if (value == "BINARY") {
        if (bitsAllocated != 1) return fail(error, DCMSHIM_INVALID, "BINARY segmentation with BitsAllocated %ld", bitsAllocated);
    } else if (value == "FRACTIONAL") {
        if (bitsAllocated != 8) return fail(error, DCMSHIM_INVALID, "FRACTIONAL segmentation with BitsAllocated %ld", bitsAllocated);
        seg->fractional = true;
        long maxValue = 0;
        if (getUS(ds, DCM_MaximumFractionalValue, maxValue) && maxValue > 0) seg->maxFractional = maxValue;
    } else {
        return fail(error, DCMSHIM_UNSUPPORTED, "SegmentationType %s is not supported", value.c_str());
    }
    if (!getUS(ds, DCM_Rows, rows) || rows <= 0) return fail(error, DCMSHIM_INVALID, "missing or zero Rows");
    if (!getUS(ds, DCM_Columns, columns) || columns <= 0) return fail(error, DCMSHIM_INVALID, "missing or zero Columns");
    if (ds->tagExists(DCM_NumberOfFrames) && (!getInt(ds, DCM_NumberOfFrames, frames) || frames <= 0))
        return fail(error, DCMSHIM_INVALID, "NumberOfFrames is not a positive integer");
    if (rows > limits.maxRows || columns > limits.maxColumns || (int64_t)rows * columns > limits.maxPixelsPerFrame)
        return fail(error, DCMSHIM_TOO_LARGE, "%ld x %ld pixels per frame exceed the limits", rows, columns);
    if (frames > limits.maxFrames)
        return fail(error, DCMSHIM_TOO_LARGE, "NumberOfFrames %ld exceeds the limit %lld", frames, (long long)limits.maxFrames);
    DcmXfer xfer(ds->getOriginalXfer());
    if (xfer.isEncapsulated()) return fail(error, DCMSHIM_UNSUPPORTED, "compressed segmentations are not supported");
    DcmElement *pixelElement = nullptr;
    if (ds->findAndGetElement(DCM_PixelData, pixelElement).bad() || !pixelElement)
        return fail(error, DCMSHIM_INVALID, "missing PixelData");
    unsigned __int128 bits = (unsigned __int128)rows * columns * frames * (seg->fractional ? 8 : 1);
    unsigned __int128 needed = (bits + 7) / 8;
    Uint32 have = pixelElement->getLength();
    if (have == DCM_UndefinedLength || (unsigned __int128)have < needed)
        return fail(error, DCMSHIM_INVALID, "PixelData holds %lu bytes but the header needs %llu", (unsigned long)have,
                    (unsigned long long)needed);
    Uint8 *pixels = nullptr;
    if (pixelElement->getUint8Array(pixels).bad() || !pixels) return fail(error, DCMSHIM_INVALID, "cannot access PixelData");
    seg->pixels = pixels;
    seg->rows = (int32_t)rows;
    seg->columns = (int32_t)columns;
    seg->frames = (int32_t)frames;

    DcmSequenceOfItems *segments = nullptr;
    if (ds->findAndGetSequence(DCM_SegmentSequence, segments).bad() || !segments || segments->card() == 0)
        return fail(error, DCMSHIM_INVALID, "missing SegmentSequence");
    for (unsigned long i = 0; i < segments->card(); i++) {
        DcmItem *item = segments->getItem(i);
        long number = 0;
        if (!getUS(item, DCM_SegmentNumber, number)) return fail(error, DCMSHIM_INVALID, "segment without SegmentNumber");
        OFString label;
        getString(item, DCM_SegmentLabel, label);
        seg->segments.push_back({(int32_t)number, label});
    }
    return DCMSHIM_OK;
}

} // namespace

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_seg_open(const uint8_t *bytes, size_t length, const dcmshim_limits *limits, dcmshim_seg **out,
                                    dcmshim_error *error) {
    if (out) *out = nullptr;
    return guarded(error, "parsing", "parse", [&]() -> int32_t {
        initialize();
        std::unique_ptr<dcmshim_seg> seg(new dcmshim_seg());
        int32_t rc = openSegmentation(bytes, length, limits, seg.get(), error);
        if (rc != DCMSHIM_OK) return rc;
        *out = seg.release();
        return DCMSHIM_OK;
    });
}

extern "C" DCMSHIM_EXPORT void dcmshim_impl_seg_close(dcmshim_seg *seg) { delete seg; }

extern "C" DCMSHIM_EXPORT void dcmshim_impl_seg_size(const dcmshim_seg *seg, int32_t *rows, int32_t *columns, int32_t *frames,
                                 int32_t *segments) {
    if (!seg) return;
    if (rows) *rows = seg->rows;
    if (columns) *columns = seg->columns;
    if (frames) *frames = seg->frames;
    if (segments) *segments = (int32_t)seg->segments.size();
}

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_seg_segment(const dcmshim_seg *seg, int32_t index, int32_t *number, char *label,
                                       size_t capacity) {
    if (!seg || index < 0 || (size_t)index >= seg->segments.size()) return DCMSHIM_INVALID;
    if (number) *number = seg->segments[(size_t)index].number;
    if (label && capacity > 0) copyString(label, capacity, seg->segments[(size_t)index].label);
    return DCMSHIM_OK;
}

extern "C" DCMSHIM_EXPORT int32_t dcmshim_impl_seg_frame(const dcmshim_seg *seg, int32_t index, int32_t *segmentNumber, char sourceUID[68],
                                     int32_t *sourceFrame, uint8_t *mask, size_t count, dcmshim_error *error) {
    try {
        if (!seg || index < 0 || index >= seg->frames) return fail(error, DCMSHIM_INVALID, "frame index out of range");
        const size_t pixels = (size_t)seg->rows * (size_t)seg->columns;
        if (count < pixels) return fail(error, DCMSHIM_INVALID, "output buffer too small");
        DcmDataset *ds = seg->dataset;
        long number = 0;
        DcmItem *identification =
            functionalGroupItem(ds, index, DCM_SegmentIdentificationSequence, DCM_ReferencedSegmentNumber);
        if (!getUS(identification, DCM_ReferencedSegmentNumber, number))
            return fail(error, DCMSHIM_INVALID, "frame %d has no ReferencedSegmentNumber", index);
        *segmentNumber = (int32_t)number;
        sourceUID[0] = 0;
        *sourceFrame = 0;
        DcmItem *candidates[2] = {perFrameGroup(ds, index), sharedGroup(ds)};
        for (DcmItem *fg : candidates) {
            DcmItem *derivation = sequenceItem(fg, DCM_DerivationImageSequence, 0);
            DcmItem *source = sequenceItem(derivation, DCM_SourceImageSequence, 0);
            OFString uid;
            if (source && getString(source, DCM_ReferencedSOPInstanceUID, uid)) {
                copyString(sourceUID, 68, uid);
                long frameNumber = 0;
                if (getInt(source, DCM_ReferencedFrameNumber, frameNumber) && frameNumber > 0)
                    *sourceFrame = (int32_t)frameNumber;
                break;
            }
        }
        if (seg->fractional) {
            const Uint8 *p = seg->pixels + (size_t)index * pixels;
            for (size_t i = 0; i < pixels; i++) mask[i] = (long)p[i] * 2 > seg->maxFractional ? 1 : 0;
        } else {
            size_t bit = (size_t)index * pixels;
            for (size_t i = 0; i < pixels; i++, bit++) mask[i] = (seg->pixels[bit >> 3] >> (bit & 7)) & 1u;
        }
        return DCMSHIM_OK;
    } catch (...) {
        return fail(error, DCMSHIM_INVALID, "reading the segmentation frame failed");
    }
}
