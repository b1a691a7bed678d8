// The system zlib, libzstd, liblzma and libbz2, for decompressing staged images; wraps only what Swift cannot call.
#ifndef STAGINGFS_CCOMPRESSION_SHIM_H
#define STAGINGFS_CCOMPRESSION_SHIM_H

#include <zlib.h>
#include <zstd.h>
#include <lzma.h>
#include <bzlib.h>

// inflateInit2 is a macro (it passes the header's version and struct size to inflateInit2_), so Swift cannot call it.
static inline int ccompression_inflate_init2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}

// liblzma's decoder flags are UINT32_C(...) macros, which Swift does not import.
static const uint32_t ccompression_lzma_concatenated = LZMA_CONCATENATED;
static const uint32_t ccompression_lzma_tell_unsupported_check = LZMA_TELL_UNSUPPORTED_CHECK;

#endif
