// The system OpenSSL's message digests (libcrypto), the same implementation `openssl dgst` uses.
#ifndef STAGINGFS_COPENSSL_SHIM_H
#define STAGINGFS_COPENSSL_SHIM_H

#include <openssl/evp.h>

#endif
