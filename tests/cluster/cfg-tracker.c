/*
 * cfg-tracker: a libcfg shutdown tracker, as pacemakerd is one.
 *
 *   cc -o cfg-tracker tests/cluster/cfg-tracker.c -lcfg
 *   cfg-tracker yes|no|silent
 *
 * Connects to the cfg service (corosync's or `corowire serve`'s, whichever
 * holds the standard name), calls corosync_cfg_trackstart(handle, 0) with a
 * shutdown callback, and prints one line per thing it sees on stdout,
 * flushed at once:
 *
 *   trackstart RESULT
 *   shutdown callback flags=FLAGS
 *   replyto_shutdown RESULT          (yes: COROSYNC_CFG_SHUTDOWN_FLAG_YES,
 *                                     no: _NO, silent: no answer at all)
 *   dispatch RESULT                  (a dispatch that did not return CS_OK;
 *                                     it exits then)
 *   connection closed                (the daemon went away: POLLHUP/POLLERR)
 *
 * RESULT is the cs_error_t number.  `trackstart 1` comes before any callback.
 * It runs until the daemon closes the connection (exit 0) or it is killed;
 * it exits 1 when initialize fails, 2 on a usage error.
 */
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include <corosync/cfg.h>
#include <corosync/corotypes.h>

static enum { YES, NO, SILENT } answer;

static void shutdown_callback(corosync_cfg_handle_t handle, corosync_cfg_shutdown_flags_t flags)
{
    printf("shutdown callback flags=%d\n", (int)flags);
    fflush(stdout);
    if (answer == SILENT)
        return;
    cs_error_t r = corosync_cfg_replyto_shutdown(
        handle, answer == YES ? COROSYNC_CFG_SHUTDOWN_FLAG_YES : COROSYNC_CFG_SHUTDOWN_FLAG_NO);
    printf("replyto_shutdown %d\n", (int)r);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "yes") && strcmp(argv[1], "no") && strcmp(argv[1], "silent"))) {
        fprintf(stderr, "usage: cfg-tracker yes|no|silent\n");
        return 2;
    }
    answer = !strcmp(argv[1], "yes") ? YES : !strcmp(argv[1], "no") ? NO : SILENT;
    corosync_cfg_callbacks_t callbacks = { .corosync_cfg_shutdown_callback = shutdown_callback };
    corosync_cfg_handle_t handle;
    cs_error_t r = corosync_cfg_initialize(&handle, &callbacks);
    if (r != CS_OK) {
        fprintf(stderr, "cfg-tracker: corosync_cfg_initialize: %d\n", (int)r);
        return 1;
    }
    printf("trackstart %d\n", (int)corosync_cfg_trackstart(handle, 0));
    fflush(stdout);
    int fd;
    if (corosync_cfg_fd_get(handle, &fd) != CS_OK)
        return 1;
    for (;;) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, -1) < 0)
            continue;
        if (p.revents & POLLIN) {
            r = corosync_cfg_dispatch(handle, CS_DISPATCH_ALL);
            if (r != CS_OK) {
                printf("dispatch %d\n", (int)r);
                fflush(stdout);
                return 0;
            }
        }
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL)) {
            printf("connection closed\n");
            fflush(stdout);
            return 0;
        }
    }
}
