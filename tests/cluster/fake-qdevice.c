/*
 * fake-qdevice: a quorum device driven by commands on stdin, to compare what
 * corosync and `corowire serve` do with a registered device.
 *
 *   cc -o fake-qdevice tests/cluster/fake-qdevice.c -lvotequorum -lcorosync_common
 *   printf 'register qd\npoll 1\n' | fake-qdevice
 *
 * Connects to votequorum (whoever holds the standard names), tracks the ring
 * id (votequorum_trackstart with CS_TRACK_CHANGES; the nodelist notification
 * carries it) and runs one command per line, printing one line per command
 * on stdout, flushed at once:
 *
 *   register NAME      votequorum_qdevice_register     -> "register CS_OK"
 *   poll 0|1           votequorum_qdevice_poll (cast_vote), with the last
 *                      ring id seen                    -> "poll CS_OK"
 *   master_wins 0|1    votequorum_qdevice_master_wins  -> "master_wins CS_OK"
 *   update NEWNAME     votequorum_qdevice_update       -> "update CS_OK"
 *   unregister         votequorum_qdevice_unregister   -> "unregister CS_OK"
 *
 * A failed call prints its cs_error_t name (cs_strerror) instead of CS_OK and
 * the program goes on.  Notifications are dispatched before each command, so
 * a poll uses the current ring.  The device's name is the last one
 * registered or updated.  It exits 0 at end of file on stdin, 1 when the
 * daemon goes away, 2 on a command it does not know.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <corosync/corotypes.h>
#include <corosync/votequorum.h>

static votequorum_ring_id_t ring;

static void on_nodelist(votequorum_handle_t handle, uint64_t context,
			votequorum_ring_id_t ring_id, uint32_t entries,
			uint32_t nodes[])
{
	(void)handle;
	(void)context;
	(void)entries;
	(void)nodes;
	ring = ring_id;
}

static int report(const char *what, cs_error_t err)
{
	printf("%s %s\n", what, err == CS_OK ? "CS_OK" : cs_strerror(err));
	return 0;
}

/* Runs one command line; returns -1 for an unknown command. */
static int run(votequorum_handle_t handle, char *line, char *name, size_t name_len)
{
	char *cmd = strtok(line, " \t\n");
	char *arg = strtok(NULL, " \t\n");

	if (cmd == NULL) {
		return 0;
	}
	if (strcmp(cmd, "register") == 0 && arg) {
		snprintf(name, name_len, "%s", arg);
		return report(cmd, votequorum_qdevice_register(handle, name));
	}
	if (strcmp(cmd, "poll") == 0 && arg) {
		return report(cmd, votequorum_qdevice_poll(handle, name, atoi(arg), ring));
	}
	if (strcmp(cmd, "master_wins") == 0 && arg) {
		return report(cmd, votequorum_qdevice_master_wins(handle, name, atoi(arg)));
	}
	if (strcmp(cmd, "update") == 0 && arg) {
		cs_error_t err = votequorum_qdevice_update(handle, name, arg);

		if (err == CS_OK) {
			snprintf(name, name_len, "%s", arg);
		}
		return report(cmd, err);
	}
	if (strcmp(cmd, "unregister") == 0) {
		return report(cmd, votequorum_qdevice_unregister(handle, name));
	}
	fprintf(stderr, "fake-qdevice: unknown command: %s\n", cmd);
	return -1;
}

int main(void)
{
	votequorum_callbacks_t callbacks = {
		.votequorum_nodelist_notify_fn = on_nodelist,
	};
	votequorum_handle_t handle;
	char name[VOTEQUORUM_QDEVICE_MAX_NAME_LEN] = "";
	char line[256];
	cs_error_t err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	err = votequorum_initialize(&handle, &callbacks);
	if (err == CS_OK) {
		err = votequorum_trackstart(handle, 0, CS_TRACK_CHANGES);
	}
	if (err != CS_OK) {
		fprintf(stderr, "fake-qdevice: cannot connect: %s\n", cs_strerror(err));
		return 1;
	}
	while (fgets(line, sizeof(line), stdin)) {
		err = votequorum_dispatch(handle, CS_DISPATCH_ALL);
		if (err != CS_OK) {
			fprintf(stderr, "fake-qdevice: dispatch: %s\n", cs_strerror(err));
			return 1;
		}
		if (run(handle, line, name, sizeof(name)) < 0) {
			return 2;
		}
	}
	votequorum_finalize(handle);
	return 0;
}
