/* The libquorum and libvotequorum calls of an application that asks whether the cluster is
 * quorate, for cli/tests/serve_compat.rs: each result on its own line, so that the outputs
 * against corosync and against `corowire serve` can be compared. Always exits 0. */
#include <corosync/quorum.h>
#include <corosync/votequorum.h>
#include <inttypes.h>
#include <stdio.h>

static void quorum_cb(quorum_handle_t h, uint32_t quorate, uint64_t ring_seq, uint32_t entries,
		      uint32_t *members)
{
	(void)h; (void)ring_seq;
	printf("quorum notification quorate %" PRIu32 " members", quorate);
	for (uint32_t i = 0; i < entries; i++)
		printf(" %" PRIu32, members[i]);
	printf("\n");
}

int main(void)
{
	quorum_callbacks_t qcb = { .quorum_notify_fn = quorum_cb };
	votequorum_callbacks_t vcb = { 0 };
	quorum_handle_t q;
	votequorum_handle_t v;
	uint32_t type = 99;
	int quorate = -1;
	struct votequorum_info info;
	cs_error_t err;

	err = quorum_initialize(&q, &qcb, &type);
	printf("quorum_initialize %d type %" PRIu32 "\n", err, type);
	if (err == CS_OK) {
		err = quorum_getquorate(q, &quorate);
		printf("quorum_getquorate %d quorate %d\n", err, quorate);
		err = quorum_trackstart(q, CS_TRACK_CURRENT);
		printf("quorum_trackstart %d\n", err);
		if (err == CS_OK)
			printf("quorum_dispatch %d\n", quorum_dispatch(q, CS_DISPATCH_ONE));
		quorum_finalize(q);
	}
	err = votequorum_initialize(&v, &vcb);
	printf("votequorum_initialize %d\n", err);
	if (err == CS_OK) {
		err = votequorum_getinfo(v, 0, &info);
		printf("votequorum_getinfo %d node %u expected %u total %u quorum %u flags %u\n", err, info.node_id,
		       info.node_expected_votes, info.total_votes, info.quorum, info.flags);
		votequorum_finalize(v);
	}
	return 0;
}
