// Linux calls and constants that Glibc's Swift module hides behind _GNU_SOURCE, compiled here (not in the
// header) so that _GNU_SOURCE never changes how system types look to other modules.
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const unsigned int clinux_rename_noreplace = RENAME_NOREPLACE;
const long clinux_utime_now = UTIME_NOW;
const long clinux_utime_omit = UTIME_OMIT;

int clinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, flags);
}

/// Starts writeback of a written range without waiting for it, so a later fsync has little left to do.
int clinux_start_writeback(int fd, off_t offset, off_t count) {
    return sync_file_range(fd, offset, count, SYNC_FILE_RANGE_WRITE);
}

/// Names the calling thread (visible in top -H and /proc/PID/task/*/comm); at most 15 bytes are kept.
void clinux_name_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

/// A Unix stream socket and the address for `path`. Returns the descriptor, or -errno.
static int unix_socket(const char *path, struct sockaddr_un *address) {
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    if (strlen(path) >= sizeof(address->sun_path)) return -ENAMETOOLONG;
    strcpy(address->sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int clinux_unix_listen(const char *path, int backlog) {
    struct sockaddr_un address;
    int fd = unix_socket(path, &address);
    if (fd < 0) return fd;
    unlink(path);
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0 || listen(fd, backlog) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

/// The connected peer's credentials as the kernel recorded them (SO_PEERCRED). Returns 0, or -errno.
int clinux_peer_credentials(int fd, unsigned int *uid, unsigned int *gid, int *pid) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0) return -errno;
    *uid = credentials.uid;
    *gid = credentials.gid;
    *pid = credentials.pid;
    return 0;
}

int clinux_peer_groups(int fd, unsigned int *groups, size_t capacity, size_t *needed) {
    socklen_t length = (socklen_t)(capacity * sizeof(gid_t));
    int result = getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &length);
    *needed = length / sizeof(gid_t);
    if (result < 0) return -errno;
    return (int)(length / sizeof(gid_t));
}

/// Accepts a connection, close-on-exec. Returns the descriptor or -1 with errno set.
int clinux_accept(int listener) {
    return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}


int clinux_worker_epoll(int fuse_fd, int stop_fd) {
    int epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd < 0) return -errno;
    struct epoll_event request = { .events = EPOLLIN | EPOLLEXCLUSIVE, .data.fd = fuse_fd };
    struct epoll_event stop = { .events = EPOLLIN, .data.fd = stop_fd };
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fuse_fd, &request) < 0 || epoll_ctl(epoll_fd, EPOLL_CTL_ADD, stop_fd, &stop) < 0) {
        int error = errno;
        close(epoll_fd);
        return -error;
    }
    return epoll_fd;
}

int clinux_worker_wait(int epoll_fd, int stop_fd) {
    struct epoll_event events[2];
    for (;;) {
        int count = epoll_wait(epoll_fd, events, 2, -1);
        if (count < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        int ready = 0;
        for (int i = 0; i < count; i++) {
            if (events[i].data.fd == stop_fd) return 0;
            ready = 1;
        }
        if (ready) return 1;
    }
}

extern char **environ;

int clinux_run(const char *arguments, size_t length, const int *pass_fds, size_t pass_count, int timeout_seconds,
               char *message, size_t message_size) {
    // argv: pointers into a copy of the NUL-separated arguments.
    char *copy = malloc(length + 1);
    if (!copy) return -ENOMEM;
    memcpy(copy, arguments, length);
    copy[length] = 0;
    size_t count = 1;
    for (size_t i = 0; i < length; i++) count += copy[i] == 0;
    char **argv = calloc(count + 1, sizeof(char *));
    if (!argv) { free(copy); return -ENOMEM; }
    size_t n = 0;
    for (char *p = copy; p <= copy + length && n < count; p += strlen(p) + 1) argv[n++] = p;
    argv[n] = NULL;

    int pipe_fds[2];
    if (pipe2(pipe_fds, O_CLOEXEC) != 0) { int e = errno; free(argv); free(copy); return -e; }
    // The passed descriptors are first copied above every target number, so that placing one at 3 + i never
    // overwrites another still to be placed.
    int staged[16];
    if (pass_count > 16) { close(pipe_fds[0]); close(pipe_fds[1]); free(argv); free(copy); return -EINVAL; }
    for (size_t i = 0; i < pass_count; i++) {
        staged[i] = fcntl(pass_fds[i], F_DUPFD_CLOEXEC, (int)(3 + pass_count + 1));
        if (staged[i] < 0) {
            int e = errno;
            while (i > 0) close(staged[--i]);
            close(pipe_fds[0]); close(pipe_fds[1]); free(argv); free(copy);
            return -e;
        }
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 1);
    posix_spawn_file_actions_adddup2(&actions, pipe_fds[1], 2);
    for (size_t i = 0; i < pass_count; i++) posix_spawn_file_actions_adddup2(&actions, staged[i], (int)(3 + i));
    // Nothing else of the daemon's reaches the child: other tenants' open files are descriptors too.
    posix_spawn_file_actions_addclosefrom_np(&actions, (int)(3 + pass_count));
    // Its own process group, so that a timeout kills whatever it started; every signal at its default and none
    // blocked, whatever this process ignores or blocks (a limit's SIGXFSZ must stop the child).
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attributes, 0);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attributes, &all);
    posix_spawnattr_setsigmask(&attributes, &none);
    pid_t pid;
    int spawned = posix_spawnp(&pid, argv[0], &actions, &attributes, argv, environ);
    posix_spawnattr_destroy(&attributes);
    posix_spawn_file_actions_destroy(&actions);
    for (size_t i = 0; i < pass_count; i++) close(staged[i]);
    close(pipe_fds[1]);
    free(argv);
    free(copy);
    if (spawned != 0) { close(pipe_fds[0]); return -spawned; }

    struct timespec started;
    clock_gettime(CLOCK_MONOTONIC, &started);
    int timed_out = 0;
    size_t kept = 0;
    char discard[4096];
    for (;;) {
        int wait_ms = -1;
        if (timeout_seconds > 0) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long elapsed = (now.tv_sec - started.tv_sec) * 1000LL + (now.tv_nsec - started.tv_nsec) / 1000000;
            long long left = timeout_seconds * 1000LL - elapsed;
            if (left <= 0) { timed_out = 1; kill(-pid, SIGKILL); break; }
            wait_ms = (int)left;
        }
        struct pollfd readable = { .fd = pipe_fds[0], .events = POLLIN };
        int ready = poll(&readable, 1, wait_ms);
        if (ready < 0 && errno == EINTR) continue;
        if (ready == 0) continue;
        char *into = kept + 1 < message_size ? message + kept : discard;
        size_t room = kept + 1 < message_size ? message_size - 1 - kept : sizeof discard;
        ssize_t got = read(pipe_fds[0], into, room);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        if (into != discard) kept += (size_t)got;
    }
    if (message_size > 0) message[kept] = 0;
    close(pipe_fds[0]);
    // A child that closed its stderr early is still bound by the timeout.
    int status;
    for (;;) {
        pid_t done = waitpid(pid, &status, timed_out || timeout_seconds <= 0 ? 0 : WNOHANG);
        if (done == pid) break;
        if (done < 0 && errno != EINTR) return -errno;
        if (done == 0) {
            struct timespec now, pause = { .tv_sec = 0, .tv_nsec = 20 * 1000000 };
            clock_gettime(CLOCK_MONOTONIC, &now);
            if (now.tv_sec - started.tv_sec >= timeout_seconds) { timed_out = 1; kill(-pid, SIGKILL); }
            else nanosleep(&pause, NULL);
        }
    }
    // Whatever the child left in its group goes with it.
    kill(-pid, SIGKILL);
    if (timed_out) return -ETIMEDOUT;
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    return 128 + WTERMSIG(status);
}

int clinux_resolve(const char *host, int port, char *out, size_t size) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    int status = getaddrinfo(host, service, &hints, &list);
    if (status != 0) return status < 0 ? status : -status;
    int count = 0;
    size_t used = 0;
    for (struct addrinfo *info = list; info; info = info->ai_next) {
        char text[NI_MAXHOST];
        if (!info->ai_addr || getnameinfo(info->ai_addr, info->ai_addrlen, text, sizeof text, NULL, 0, NI_NUMERICHOST) != 0) continue;
        size_t length = strlen(text) + 1;
        if (used + length > size) break;
        memcpy(out + used, text, length);
        used += length;
        count++;
    }
    freeaddrinfo(list);
    return count;
}
