// The system OpenSSL's TLS client (libssl), for web-download's https; wraps only the macros Swift cannot call.
#ifndef STAGINGFS_CLIBSSL_SHIM_H
#define STAGINGFS_CLIBSSL_SHIM_H

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

/// SSL_set_tlsext_host_name is a macro over SSL_ctrl: the server name (SNI) sent in the handshake.
static inline int clibssl_set_server_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

/// SSL_OP_IGNORE_UNEXPECTED_EOF is a macro over a 64-bit bit: a close without close_notify reads as end of stream,
/// and the HTTP framing (Content-Length, chunks) tells whether the body was cut short.
static inline void clibssl_ignore_unexpected_eof(SSL *ssl) {
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
}

#endif
