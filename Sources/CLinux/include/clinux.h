// Linux calls and constants that Glibc's Swift module hides behind _GNU_SOURCE.
#ifndef STAGINGFS_CLINUX_H
#define STAGINGFS_CLINUX_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>

static const unsigned int clinux_rename_noreplace = RENAME_NOREPLACE;
static const unsigned int clinux_rename_exchange = RENAME_EXCHANGE;
static const long clinux_utime_now = UTIME_NOW;
static const long clinux_utime_omit = UTIME_OMIT;

static inline int clinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

#endif
