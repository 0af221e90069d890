/*
 * vq-notify: print every libvotequorum notification in a stable text form.
 *
 *   cc -o vq-notify tests/cluster/vq-notify.c -lvotequorum -lquorum
 *   vq-notify [--libquorum] < FIFO
 *
 * Connects to votequorum (corosync's or `corowire serve`'s, whichever holds
 * the standard names), asks for the current state and every change
 * (votequorum_trackstart with CS_TRACK_CHANGES, which also delivers the
 * current state), and prints one line per notification on stdout, flushed at
 * once:
 *
 *   ready
 *   quorum quorate=yes|no nodes=ID:STATE,...
 *   nodelist ring_id=NODEID.SEQ members=ID,...
 *   expected_votes N
 *
 * STATE is member, dead, leaving or the number corosync sent; SEQ is
 * hexadecimal, as corosync-quorumtool prints it.  `ready` is printed once the
 * track is registered, before any notification.  With --libquorum it tracks
 * libquorum instead (quorum_trackstart, CS_TRACK_CHANGES) and prints
 *
 *   libquorum quorate=yes|no members=ID,...
 *
 * (without the ring sequence, which differs from run to run).
 *
 * Stdin is its only stop signal: it reads and ignores whatever arrives there,
 * and exits 0 (after finalizing) when stdin reaches end of file or
 * cannot be read.  Keep a writer open for as long as it should run: started
 * with stdin at end of file (</dev/null, a closed pipe) it exits at once,
 * printing at most `ready` and the current state.  corosync-cmapctl -T
 * differs: it quits on a `q` line and spins on POLLHUP at the end of a pipe.
 * It exits 1 (with a message on stderr) when the daemon goes away or a call
 * fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <corosync/corotypes.h>
#include <corosync/quorum.h>
#include <corosync/votequorum.h>

static const char *state_name(uint32_t state, char *buf, size_t len)
{
	switch (state) {
	case VOTEQUORUM_NODESTATE_MEMBER:
		return "member";
	case VOTEQUORUM_NODESTATE_DEAD:
		return "dead";
	case VOTEQUORUM_NODESTATE_LEAVING:
		return "leaving";
	default:
		snprintf(buf, len, "%" PRIu32, state);
		return buf;
	}
}

static void on_quorum(votequorum_handle_t handle, uint64_t context,
		      uint32_t quorate, uint32_t entries,
		      votequorum_node_t nodes[])
{
	char buf[16];
	uint32_t i;

	(void)handle;
	(void)context;
	printf("quorum quorate=%s nodes=", quorate ? "yes" : "no");
	for (i = 0; i < entries; i++) {
		printf("%s%" PRIu32 ":%s", i ? "," : "", nodes[i].nodeid,
		       state_name(nodes[i].state, buf, sizeof(buf)));
	}
	printf("\n");
}

static void on_nodelist(votequorum_handle_t handle, uint64_t context,
			votequorum_ring_id_t ring_id, uint32_t entries,
			uint32_t nodes[])
{
	uint32_t i;

	(void)handle;
	(void)context;
	printf("nodelist ring_id=%" PRIx32 ".%" PRIx64 " members=",
	       ring_id.nodeid, ring_id.seq);
	for (i = 0; i < entries; i++) {
		printf("%s%" PRIu32, i ? "," : "", nodes[i]);
	}
	printf("\n");
}

static void on_expected(votequorum_handle_t handle, uint64_t context,
			uint32_t expected_votes)
{
	(void)handle;
	(void)context;
	printf("expected_votes %" PRIu32 "\n", expected_votes);
}

static void on_libquorum(quorum_handle_t handle, uint32_t quorate,
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
	fprintf(stderr, "vq-notify: %s failed: error %d\n", what, (int)err);
	return 1;
}

/* votequorum_trackstart with CS_TRACK_CHANGES; returns 0 or main's status. */
static int start_votequorum(uint64_t *handle, int *fd)
{
	static votequorum_callbacks_t callbacks = {
		.votequorum_quorum_notify_fn = on_quorum,
		.votequorum_expectedvotes_notify_fn = on_expected,
		.votequorum_nodelist_notify_fn = on_nodelist,
	};
	cs_error_t err = votequorum_initialize(handle, &callbacks);

	if (err != CS_OK) {
		return failed("votequorum_initialize", err);
	}
	err = votequorum_fd_get(*handle, fd);
	if (err != CS_OK) {
		return failed("votequorum_fd_get", err);
	}
	err = votequorum_trackstart(*handle, 0, CS_TRACK_CHANGES);
	return err == CS_OK ? 0 : failed("votequorum_trackstart", err);
}

/* quorum_trackstart with CS_TRACK_CHANGES; returns 0 or main's status. */
static int start_libquorum(uint64_t *handle, int *fd)
{
	static quorum_callbacks_t callbacks = { .quorum_notify_fn = on_libquorum };
	uint32_t type;
	cs_error_t err = quorum_initialize(handle, &callbacks, &type);

	if (err != CS_OK) {
		return failed("quorum_initialize", err);
	}
	err = quorum_fd_get(*handle, fd);
	if (err != CS_OK) {
		return failed("quorum_fd_get", err);
	}
	err = quorum_trackstart(*handle, CS_TRACK_CHANGES);
	return err == CS_OK ? 0 : failed("quorum_trackstart", err);
}

int main(int argc, char **argv)
{
	int libquorum = argc == 2 && strcmp(argv[1], "--libquorum") == 0;
	uint64_t handle;
	struct pollfd fds[2];
	cs_error_t err;
	int fd, rc;

	if (argc > 1 && !libquorum) {
		fprintf(stderr, "usage: vq-notify [--libquorum]\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	rc = libquorum ? start_libquorum(&handle, &fd) : start_votequorum(&handle, &fd);
	if (rc != 0) {
		return rc;
	}
	printf("ready\n");

	fds[0].fd = fd;
	fds[0].events = POLLIN;
	fds[1].fd = STDIN_FILENO;
	fds[1].events = POLLIN;
	for (;;) {
		if (poll(fds, 2, -1) < 0) {
			if (errno == EINTR) {
				continue;
			}
			perror("vq-notify: poll");
			return 1;
		}
		if (fds[0].revents) {
			err = libquorum ? quorum_dispatch(handle, CS_DISPATCH_ALL)
					: votequorum_dispatch(handle, CS_DISPATCH_ALL);
			if (err != CS_OK) {
				return failed("dispatch", err);
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
	if (libquorum) {
		quorum_finalize(handle);
	} else {
		votequorum_finalize(handle);
	}
	return 0;
}
