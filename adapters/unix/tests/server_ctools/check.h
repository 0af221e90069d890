/* CHECK(call): print the failing call and its cs_error_t, and leave main with status 1. */
#ifndef COROWIRE_TEST_CHECK_H
#define COROWIRE_TEST_CHECK_H

#include <stdio.h>

#define CHECK(call)                                                                      \
	do {                                                                                 \
		cs_error_t err_ = (call);                                                        \
		if (err_ != CS_OK) {                                                             \
			printf("FAILED %s: %d\n", #call, err_);                                      \
			return 1;                                                                    \
		}                                                                                \
	} while (0)

#endif
