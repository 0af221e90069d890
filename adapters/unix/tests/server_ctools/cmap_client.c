/* A libcmap client for tests/server_ctools.rs: exercises the stock library against the
 * built-in server and prints what it got, one fact per line. */
#include <corosync/cmap.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "check.h"

static void notify(cmap_handle_t h, cmap_track_handle_t t, int32_t event, const char *key,
		   struct cmap_notify_value new_value, struct cmap_notify_value old_value, void *user)
{
	(void)h; (void)t; (void)user; (void)old_value;
	printf("event %d %s new_len %zu\n", event, key, new_value.len);
}

int main(void)
{
	cmap_handle_t h, stats;
	cmap_iter_handle_t it;
	cmap_track_handle_t track;
	char key[CMAP_KEYNAME_MAXLEN + 1];
	size_t len;
	cmap_value_types_t type;
	cs_error_t err;
	uint32_t u32;
	int64_t i64;
	double dbl;
	uint64_t u64;
	char *str;

	CHECK(cmap_initialize(&h));
	CHECK(cmap_set_uint32(h, "ctest.u32", 42));
	CHECK(cmap_inc(h, "ctest.u32"));
	CHECK(cmap_get_uint32(h, "ctest.u32", &u32));
	printf("u32 %" PRIu32 "\n", u32);
	CHECK(cmap_set_int64(h, "ctest.i64", -5));
	CHECK(cmap_get_int64(h, "ctest.i64", &i64));
	printf("i64 %" PRId64 "\n", i64);
	CHECK(cmap_set_double(h, "ctest.dbl", 2.5));
	CHECK(cmap_get_double(h, "ctest.dbl", &dbl));
	printf("dbl %.1f\n", dbl);
	CHECK(cmap_set_string(h, "ctest.str", "hello"));
	CHECK(cmap_get_string(h, "ctest.str", &str));
	printf("str %s\n", str);
	free(str);
	printf("missing %d\n", cmap_get_uint32(h, "ctest.none", &u32));

	CHECK(cmap_iter_init(h, "ctest.", &it));
	while ((err = cmap_iter_next(h, it, key, &len, &type)) == CS_OK)
		printf("iter %s %zu %d\n", key, len, type);
	printf("iter end %d\n", err);
	CHECK(cmap_iter_finalize(h, it));

	CHECK(cmap_track_add(h, "ctest.", CMAP_TRACK_ADD | CMAP_TRACK_MODIFY | CMAP_TRACK_DELETE | CMAP_TRACK_PREFIX,
			     notify, NULL, &track));
	CHECK(cmap_set_uint8(h, "ctest.new", 1));
	CHECK(cmap_delete(h, "ctest.new"));
	CHECK(cmap_dispatch(h, CS_DISPATCH_ALL));
	CHECK(cmap_track_delete(h, track));

	CHECK(cmap_initialize_map(&stats, CMAP_MAP_STATS));
	CHECK(cmap_get_uint64(stats, "stats.ipcs.global.active", &u64));
	printf("active %" PRIu64 "\n", u64);
	CHECK(cmap_finalize(stats));
	CHECK(cmap_finalize(h));
	printf("done\n");
	return 0;
}
