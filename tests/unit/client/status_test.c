/* status_test: bulletin_status has exactly the numbers and names of
 * bulletin.proto's StatusCode (the generated enum is the reference). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "bulletin.h"
#include "bulletin.pb-c.h"

static void test_numbers_match_proto(void **state)
{
    (void)state;
    assert_int_equal(BULLETIN_OK, BULLETIN__STATUS_CODE__OK);
    assert_int_equal(BULLETIN_CANCELLED, BULLETIN__STATUS_CODE__CANCELLED);
    assert_int_equal(BULLETIN_UNKNOWN, BULLETIN__STATUS_CODE__UNKNOWN);
    assert_int_equal(BULLETIN_INVALID_ARGUMENT, BULLETIN__STATUS_CODE__INVALID_ARGUMENT);
    assert_int_equal(BULLETIN_DEADLINE_EXCEEDED, BULLETIN__STATUS_CODE__DEADLINE_EXCEEDED);
    assert_int_equal(BULLETIN_NOT_FOUND, BULLETIN__STATUS_CODE__NOT_FOUND);
    assert_int_equal(BULLETIN_ALREADY_EXISTS, BULLETIN__STATUS_CODE__ALREADY_EXISTS);
    assert_int_equal(BULLETIN_PERMISSION_DENIED, BULLETIN__STATUS_CODE__PERMISSION_DENIED);
    assert_int_equal(BULLETIN_RESOURCE_EXHAUSTED, BULLETIN__STATUS_CODE__RESOURCE_EXHAUSTED);
    assert_int_equal(BULLETIN_FAILED_PRECONDITION, BULLETIN__STATUS_CODE__FAILED_PRECONDITION);
    assert_int_equal(BULLETIN_ABORTED, BULLETIN__STATUS_CODE__ABORTED);
    assert_int_equal(BULLETIN_OUT_OF_RANGE, BULLETIN__STATUS_CODE__OUT_OF_RANGE);
    assert_int_equal(BULLETIN_UNIMPLEMENTED, BULLETIN__STATUS_CODE__UNIMPLEMENTED);
    assert_int_equal(BULLETIN_INTERNAL, BULLETIN__STATUS_CODE__INTERNAL);
    assert_int_equal(BULLETIN_UNAVAILABLE, BULLETIN__STATUS_CODE__UNAVAILABLE);
    assert_int_equal(BULLETIN_DATA_LOSS, BULLETIN__STATUS_CODE__DATA_LOSS);
    assert_int_equal(BULLETIN_UNAUTHENTICATED, BULLETIN__STATUS_CODE__UNAUTHENTICATED);
}

/* Every value of the proto enum has the same name here; nothing is missing. */
static void test_names_match_proto(void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &bulletin__status_code__descriptor;
    assert_int_equal(d->n_values, 17);
    for (unsigned i = 0; i < d->n_values; i++)
        assert_string_equal(bulletin_status_name((bulletin_status)d->values[i].value),
                            d->values[i].name);
    assert_string_equal(bulletin_status_name((bulletin_status)17), "UNKNOWN");
    assert_string_equal(bulletin_status_name((bulletin_status)-1), "UNKNOWN");
}

static void test_write_status_names(void **state)
{
    (void)state;
    const ProtobufCEnumDescriptor *d = &bulletin__write_status__descriptor;
    for (unsigned i = 0; i < d->n_values; i++) {
        char lower[32];
        size_t n = strlen(d->values[i].name);
        assert_true(n < sizeof lower);
        for (size_t k = 0; k <= n; k++)
            lower[k] = (char)(d->values[i].name[k] >= 'A' && d->values[i].name[k] <= 'Z'
                                  ? d->values[i].name[k] + 32
                                  : d->values[i].name[k]);
        if (d->values[i].value == 0)
            strcpy(lower, "unspecified"); /* WRITE_UNSPECIFIED */
        assert_string_equal(bulletin_write_status_name((bulletin_write_status)d->values[i].value),
                            lower);
    }
    assert_int_equal(BULLETIN_WRITE_REJECTED, BULLETIN__WRITE_STATUS__REJECTED);
    assert_int_equal(BULLETIN_WRITE_CREATED, BULLETIN__WRITE_STATUS__CREATED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numbers_match_proto),
        cmocka_unit_test(test_names_match_proto),
        cmocka_unit_test(test_write_status_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
