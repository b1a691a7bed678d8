// Linux calls and constants that Glibc's Swift module hides behind _GNU_SOURCE (implemented in clinux.c).
#ifndef STAGINGFS_CLINUX_H
#define STAGINGFS_CLINUX_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/xattr.h>

extern const unsigned int clinux_rename_noreplace;
extern const long clinux_utime_now;
extern const long clinux_utime_omit;

int clinux_renameat2(int olddirfd, const char *oldpath, int newdirfd, const char *newpath, unsigned int flags);

/// Starts writeback of a written range without waiting for it, so a later fsync has little left to do.
int clinux_start_writeback(int fd, off_t offset, off_t count);

/// Names the calling thread (visible in top -H and /proc/PID/task/*/comm); at most 15 bytes are kept.
void clinux_name_thread(const char *name);

/// Binds and listens on a Unix stream socket at `path` (replacing a stale socket file). Returns the descriptor
/// or -errno (-ENAMETOOLONG when the path does not fit sockaddr_un).
int clinux_unix_listen(const char *path, int backlog);

/// The connected peer's credentials as the kernel recorded them (SO_PEERCRED). Returns 0, or -errno.
int clinux_peer_credentials(int fd, unsigned int *uid, unsigned int *gid, int *pid);

/// The connected peer's supplementary groups as the kernel recorded them when it connected (SO_PEERGROUPS), up
/// to `capacity`. Returns how many, or -errno (-ERANGE: more than `capacity`; `needed` then says how many).
int clinux_peer_groups(int fd, unsigned int *groups, size_t capacity, size_t *needed);

/// Accepts a connection, close-on-exec. Returns the descriptor, or -1 with errno set.
int clinux_accept(int listener);

/// An epoll set for one FUSE worker: the FUSE device with EPOLLEXCLUSIVE (a request wakes one worker, as a
/// blocking read would), and the stop pipe (which wakes them all). Returns the epoll descriptor, or -errno.
int clinux_worker_epoll(int fuse_fd, int stop_fd);

/// Waits on a worker's epoll set: 1 when a request is ready, 0 when told to stop, -errno on failure.
int clinux_worker_wait(int epoll_fd, int stop_fd);

/// Runs a program (looked up in PATH) in its own process group and waits for it: `arguments` holds argv as
/// `length` bytes of NUL-separated strings. stdin is /dev/null; the first `message_size` - 1 bytes of what it
/// writes to stdout and stderr are kept in `message` (NUL-terminated). `pass_fds` (at most 16) become its descriptors 3, 4, …; no
/// other descriptor is inherited. After `timeout_seconds` (0: none) the whole group is killed. Returns the exit
/// status, 128 + the signal that ended it, -ETIMEDOUT, or -errno when it could not be started (-ENOENT: not found).
int clinux_run(const char *arguments, size_t length, const int *pass_fds, size_t pass_count, int timeout_seconds,
               char *message, size_t message_size);

/// A datagram socket connected to the service manager's `socket_path` (systemd's NOTIFY_SOCKET: a path, or
/// "@name" in the abstract namespace): each write on it is one notification ("READY=1"). Returns it, or -errno.
int clinux_notify_connect(const char *socket_path);

/// The receiving end of clinux_notify, for whoever starts the daemon (tests, a supervisor): a datagram socket
/// bound at `socket_path`. Returns the descriptor, or -errno.
int clinux_notify_listen(const char *socket_path);

/// Waits up to `timeout_ms` for one notification on a clinux_notify_listen socket and copies it, NUL-terminated,
/// into `message`. Returns its length, 0 when the time ran out, or -errno.
int clinux_notify_receive(int fd, char *message, size_t message_size, int timeout_ms);

/// Resolves `host` (getaddrinfo, stream sockets, any family) and writes each address's numeric form
/// ("192.0.2.1", "fe80::1%eth0"), NUL-separated, into `out` (as many as fit in `size`). Returns how many were
/// written, or getaddrinfo's EAI_* code (negative on glibc; gai_strerror says what it means).
int clinux_resolve(const char *host, int port, char *out, size_t size);

#endif
