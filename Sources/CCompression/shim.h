// The system zlib and libzstd, for decompressing staged images; wraps only what Swift cannot call.
#ifndef STAGINGFS_CCOMPRESSION_SHIM_H
#define STAGINGFS_CCOMPRESSION_SHIM_H

#include <zlib.h>
#include <zstd.h>

// inflateInit2 is a macro (it passes the header's version and struct size to inflateInit2_), so Swift cannot call it.
static inline int ccompression_inflate_init2(z_streamp stream, int windowBits) {
    return inflateInit2(stream, windowBits);
}

#endif
