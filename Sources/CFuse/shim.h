// The C surface of libfuse3 that StagingFS uses. Only what Swift cannot call directly lives here.
#ifndef STAGINGFS_CFUSE_SHIM_H
#define STAGINGFS_CFUSE_SHIM_H

#define FUSE_USE_VERSION 35
#include <stddef.h>
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

// fuse_args is normally built with the FUSE_ARGS_INIT macro.
static inline struct fuse_args cfuse_args_init(int argc, char **argv) {
    struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
    return args;
}

// A one-element buffer vector that names a file range; FUSE_BUFVEC_INIT is a macro.
static inline struct fuse_bufvec cfuse_fd_bufvec(size_t size, int fd, off_t offset) {
    struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(size);
    bufv.buf[0].flags = (enum fuse_buf_flags)(FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK);
    bufv.buf[0].fd = fd;
    bufv.buf[0].pos = offset;
    return bufv;
}

#endif
