// The service manager's readiness protocol (sd_notify): the daemon says READY=1 once it serves, instead of
// whoever started it guessing from a log line. Written here because it needs sockaddr_un.
#define _GNU_SOURCE
#include "clinux.h"

#include <errno.h>
#include <poll.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/// Fills `address` for `path`; "@name" is the abstract namespace, as systemd writes it. Returns the length to
/// pass to bind/sendto, or -ENAMETOOLONG / -EINVAL.
static int notify_address(const char *path, struct sockaddr_un *address) {
    size_t length = strlen(path);
    if (length == 0) return -EINVAL;
    if (length >= sizeof(address->sun_path)) return -ENAMETOOLONG;
    memset(address, 0, sizeof(*address));
    address->sun_family = AF_UNIX;
    memcpy(address->sun_path, path, length);
    if (path[0] == '@') address->sun_path[0] = '\0';
    return (int)(offsetof(struct sockaddr_un, sun_path) + length + (path[0] == '@' ? 0 : 1));
}

int clinux_notify_connect(const char *socket_path) {
    struct sockaddr_un address;
    int length = notify_address(socket_path, &address);
    if (length < 0) return length;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (connect(fd, (struct sockaddr *)&address, (socklen_t)length) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int clinux_notify_listen(const char *socket_path) {
    struct sockaddr_un address;
    int length = notify_address(socket_path, &address);
    if (length < 0) return length;
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    if (socket_path[0] != '@') unlink(socket_path);
    if (bind(fd, (struct sockaddr *)&address, (socklen_t)length) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int clinux_notify_receive(int fd, char *message, size_t message_size, int timeout_ms) {
    if (message_size == 0) return -EINVAL;
    struct pollfd request = {.fd = fd, .events = POLLIN};
    int ready;
    do ready = poll(&request, 1, timeout_ms); while (ready < 0 && errno == EINTR);
    if (ready < 0) return -errno;
    if (ready == 0) return 0;
    ssize_t got;
    do got = recv(fd, message, message_size - 1, 0); while (got < 0 && errno == EINTR);
    if (got < 0) return -errno;
    message[got] = '\0';
    return (int)got;
}
