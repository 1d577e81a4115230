/*
 * status_test.c - error names and thread-local messages.
 */
#include "base/status.h"
#include "test.h"

static void test_status_names_are_stable(void)
{
    CHECK(strcmp(stoat_strerror(STOAT_ECORRUPT), "corruption") == 0);
    CHECK(strcmp(stoat_strerror(STOAT_ECONFLICT), "conflict") == 0);
    CHECK(strcmp(stoat_strerror(12345), "unknown error") == 0);
}

static void test_status_err_records_message(void)
{
    CHECK(status_err(STOAT_EIO, "disk %d gone", 7) == STOAT_EIO);
    CHECK(strcmp(stoat_errmsg(NULL), "disk 7 gone") == 0);
    status_clear();
    CHECK(strcmp(status_msg(), "") == 0);
}

int main(int argc, char **argv)
{
    TEST_RUN(test_status_names_are_stable);
    TEST_RUN(test_status_err_records_message);
    return test_summary();
}
