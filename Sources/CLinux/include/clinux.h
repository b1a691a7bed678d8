// Linux calls and constants that Glibc's Swift module hides behind _GNU_SOURCE.
#ifndef STAGINGFS_CLINUX_H
#define STAGINGFS_CLINUX_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <pthread.h>

static const unsigned int clinux_rename_noreplace = RENAME_NOREPLACE;
static const unsigned int clinux_rename_exchange = RENAME_EXCHANGE;
static const long clinux_utime_now = UTIME_NOW;
static const long clinux_utime_omit = UTIME_OMIT;

static inline int clinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

/// Starts writeback of a written range without waiting for it, so a later fsync has little left to do.
static inline int clinux_start_writeback(int fd, off_t offset, off_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

/// Names the calling thread (visible in top -H and /proc/PID/task/*/comm); at most 15 bytes are kept.
static inline void clinux_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

#endif
