/*
 * quorum-notify: print every libquorum notification in a stable text form.
 *
 *   cc -o quorum-notify tests/cluster/quorum-notify.c -lquorum
 *   quorum-notify < FIFO
 *
 * Connects to the quorum service (corosync's or `corowire serve`'s, whichever
 * holds the standard names), tracks changes (quorum_trackstart with
 * CS_TRACK_CHANGES, which also delivers the current state) and prints one
 * line per notification on stdout, flushed at once:
 *
 *   libquorum quorate=yes|no members=ID,...
 *
 * The ring sequence is left out (it differs from run to run).  Like
 * vq-notify, it exits 0 when stdin reaches end of file, and 1 (with a message
 * on stderr) when the daemon goes away or a call fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <unistd.h>

#include <corosync/corotypes.h>
#include <corosync/quorum.h>

static void on_quorum(quorum_handle_t handle, uint32_t quorate,
		      uint64_t ring_seq, uint32_t entries, uint32_t *members)
{
	uint32_t i;

	(void)handle;
	(void)ring_seq;
	printf("libquorum quorate=%s members=", quorate ? "yes" : "no");
	for (i = 0; i < entries; i++) {
		printf("%s%" PRIu32, i ? "," : "", members[i]);
	}
	printf("\n");
}

static int failed(const char *what, cs_error_t err)
{
	fprintf(stderr, "quorum-notify: %s failed: error %d\n", what, (int)err);
	return 1;
}

int main(void)
{
	quorum_callbacks_t callbacks = { .quorum_notify_fn = on_quorum };
	quorum_handle_t handle;
	struct pollfd fds[2];
	uint32_t type;
	cs_error_t err;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	err = quorum_initialize(&handle, &callbacks, &type);
	if (err != CS_OK) {
		return failed("quorum_initialize", err);
	}
	err = quorum_fd_get(handle, &fd);
	if (err != CS_OK) {
		return failed("quorum_fd_get", err);
	}
	err = quorum_trackstart(handle, CS_TRACK_CHANGES);
	if (err != CS_OK) {
		return failed("quorum_trackstart", err);
	}
	fds[0].fd = fd;
	fds[0].events = POLLIN;
	fds[1].fd = STDIN_FILENO;
	fds[1].events = POLLIN;
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			perror("quorum-notify: poll");
			return 1;
		}
		if (fds[0].revents) {
			err = quorum_dispatch(handle, CS_DISPATCH_ALL);
			if (err != CS_OK) {
				return failed("quorum_dispatch", err);
			}
		}
		if (fds[1].revents) {
			char buf[256];
			ssize_t n = read(STDIN_FILENO, buf, sizeof(buf));

			if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
				break;
			}
		}
	}
	quorum_finalize(handle);
	return 0;
}
