/* A libvotequorum client for tests/server_ctools.rs: getinfo, tracking with notifications,
 * setexpected (to argv[1], default 3). Prints what it got, one fact per line. */
#include <corosync/votequorum.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"

static void quorum_cb(votequorum_handle_t h, uint64_t context, uint32_t quorate, uint32_t entries,
		      votequorum_node_t nodes[])
{
	(void)h; (void)nodes;
	printf("quorum context %" PRIu64 " quorate %" PRIu32 " nodes %" PRIu32 "\n", context, quorate, entries);
}

static void nodelist_cb(votequorum_handle_t h, uint64_t context, votequorum_ring_id_t ring, uint32_t entries,
			uint32_t nodes[])
{
	(void)h; (void)nodes;
	printf("nodelist context %" PRIu64 " ring %" PRIu32 ".%" PRIu64 " nodes %" PRIu32 "\n", context,
	       ring.nodeid, ring.seq, entries);
}

static void expected_cb(votequorum_handle_t h, uint64_t context, uint32_t expected)
{
	(void)h;
	printf("expected context %" PRIu64 " votes %" PRIu32 "\n", context, expected);
}

int main(int argc, char **argv)
{
	unsigned int expected = argc > 1 ? (unsigned int)strtoul(argv[1], NULL, 10) : 3;
	votequorum_callbacks_t callbacks = {
		.votequorum_quorum_notify_fn = quorum_cb,
		.votequorum_expectedvotes_notify_fn = expected_cb,
		.votequorum_nodelist_notify_fn = nodelist_cb,
	};
	votequorum_handle_t h;
	struct votequorum_info info;

	CHECK(votequorum_initialize(&h, &callbacks));
	CHECK(votequorum_getinfo(h, 0, &info));
	printf("node %u votes %u expected %u total %u quorum %u quorate %u\n", info.node_id, info.node_votes,
	       info.node_expected_votes, info.total_votes, info.quorum, !!(info.flags & VOTEQUORUM_INFO_QUORATE));
	CHECK(votequorum_trackstart(h, 42, CS_TRACK_CHANGES));
	CHECK(votequorum_dispatch(h, CS_DISPATCH_ALL));
	CHECK(votequorum_setexpected(h, expected));
	/* corosync sends the notification once the cluster message comes back: give it time. */
	usleep(200000);
	CHECK(votequorum_dispatch(h, CS_DISPATCH_ALL));
	CHECK(votequorum_trackstop(h));
	CHECK(votequorum_finalize(h));
	printf("done\n");
	return 0;
}
