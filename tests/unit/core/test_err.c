/* sm_err: messages, strerror, ENOSPC mapping, hints, prefixes, exit codes. */
#include "../unit_helpers.h"

#include "core/err.h"

#include <errno.h>

static void err_set_records_code_and_message(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(sm_err_set(&err, SM_E_NOTFOUND, "no project '%s' (%d)", "abc", 7), -1);
    assert_err(&err, SM_E_NOTFOUND, "no project 'abc' (7)");
    assert_string_equal(err.hint, "");
}

static void err_set_clears_an_earlier_hint(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_err_set(&err, SM_E_IO, "first");
    sm_err_hint(&err, "Do something.");
    sm_err_set(&err, SM_E_USAGE, "second");
    assert_err(&err, SM_E_USAGE, "second");
    assert_string_equal(err.hint, "");
}

static void err_set_truncates_a_long_message(void **state)
{
    sm_err err = SM_ERR_INIT;
    char big[3000];
    (void)state;

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    sm_err_set(&err, SM_E_INVALID, "%s", big);
    assert_int_equal(strlen(err.msg), SM_ERR_MSG_MAX - 1);
}

static void err_functions_accept_a_null_err(void **state)
{
    (void)state;

    assert_int_equal(sm_err_set(NULL, SM_E_IO, "x"), -1);
    errno = EIO;
    assert_int_equal(sm_err_sys(NULL, SM_E_IO, "x"), -1);
    assert_int_equal(sm_err_hint(NULL, "x"), -1);
    assert_int_equal(sm_err_prefix(NULL, "x"), -1);
    sm_err_clear(NULL);
}

static void err_sys_appends_strerror(void **state)
{
    sm_err err = SM_ERR_INIT;
    char want[256];
    (void)state;

    snprintf(want, sizeof(want), "cannot open 'x.txt': %s", strerror(ENOENT));
    errno = ENOENT;
    assert_int_equal(sm_err_sys(&err, SM_E_IO, "cannot open '%s'", "x.txt"), -1);
    assert_err(&err, SM_E_IO, want);
    assert_string_equal(err.hint, "");
}

static void err_sys_keeps_errno(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    errno = EACCES;
    sm_err_sys(&err, SM_E_IO, "cannot read '%s'", "f");
    assert_int_equal(errno, EACCES);
}

static void err_sys_maps_enospc_to_nospc_with_a_hint(void **state)
{
    sm_err err = SM_ERR_INIT;
    char want[256];
    (void)state;

    snprintf(want, sizeof(want), "cannot write 'pack': %s", strerror(ENOSPC));
    errno = ENOSPC;
    sm_err_sys(&err, SM_E_IO, "cannot write '%s'", "pack");
    assert_err(&err, SM_E_NOSPC, want);
    assert_string_equal(
        err.hint, "Free some space on that file system (or prune old backups) and try again.");
}

static void err_sys_maps_edquot_to_nospc(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    errno = EDQUOT;
    sm_err_sys(&err, SM_E_INTERNAL, "cannot write");
    assert_int_equal(err.code, SM_E_NOSPC);
    assert_int_equal(sm_err_exit_code(&err), 6);
}

static void err_hint_sets_the_hint_and_returns_minus_one(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_err_set(&err, SM_E_BADKEY, "wrong secret");
    assert_int_equal(sm_err_hint(&err, "Check %s.", "ENCRYPTION_SECRET"), -1);
    assert_string_equal(err.hint, "Check ENCRYPTION_SECRET.");
    assert_err(&err, SM_E_BADKEY, "wrong secret");
}

static void err_prefix_prepends_context(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_err_set(&err, SM_E_CORRUPT, "data failed its MAC check");
    sm_err_hint(&err, "Keep me.");
    assert_int_equal(sm_err_prefix(&err, "file '%s'", "index/ab"), -1);
    assert_err(&err, SM_E_CORRUPT, "file 'index/ab': data failed its MAC check");
    assert_string_equal(err.hint, "Keep me.");
}

static void err_clear_resets_everything(void **state)
{
    sm_err err = SM_ERR_INIT;
    (void)state;

    sm_err_set(&err, SM_E_IO, "x");
    sm_err_hint(&err, "y");
    sm_err_clear(&err);
    assert_err(&err, SM_OK, "");
    assert_string_equal(err.hint, "");
}

static void err_copy_copies_code_message_and_hint(void **state)
{
    sm_err a = SM_ERR_INIT, b = SM_ERR_INIT;
    (void)state;

    sm_err_set(&a, SM_E_LOCKED, "busy");
    sm_err_hint(&a, "Wait.");
    sm_err_copy(&b, &a);
    assert_err(&b, SM_E_LOCKED, "busy");
    assert_string_equal(b.hint, "Wait.");
}

static void err_exit_codes_follow_the_table(void **state)
{
    static const struct {
        sm_code code;
        int exit;
    } table[] = {
        {SM_OK, 0},         {SM_E_USAGE, 2},    {SM_E_INVALID, 2},     {SM_E_NOTFOUND, 3},
        {SM_E_CORRUPT, 4},  {SM_E_BADKEY, 4},   {SM_E_VERSION, 4},     {SM_E_LOCKED, 5},
        {SM_E_CONFLICT, 5}, {SM_E_NOSPC, 6},    {SM_E_IO, 1},          {SM_E_EXISTS, 1},
        {SM_E_LIMIT, 1},    {SM_E_INTERNAL, 1}, {SM_E_INTERRUPTED, 1}, {SM_E_DB, 1},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        sm_err err = SM_ERR_INIT;
        err.code = table[i].code;
        assert_int_equal(sm_err_exit_code(&err), table[i].exit);
    }
}

static void err_code_names_are_stable(void **state)
{
    (void)state;

    assert_string_equal(sm_code_name(SM_OK), "ok");
    assert_string_equal(sm_code_name(SM_E_NOTFOUND), "not_found");
    assert_string_equal(sm_code_name(SM_E_NOSPC), "no_space");
    assert_string_equal(sm_code_name(SM_E_BADKEY), "bad_key");
    assert_string_equal(sm_code_name(SM_E_LIMIT), "too_large");
    assert_string_equal(sm_code_name(SM_E_AUTH), "unauthorized");
    assert_string_equal(sm_code_name(SM_E_INTERNAL), "internal");
    assert_string_equal(sm_code_name((sm_code)999), "unknown");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(err_set_records_code_and_message),
        cmocka_unit_test(err_set_clears_an_earlier_hint),
        cmocka_unit_test(err_set_truncates_a_long_message),
        cmocka_unit_test(err_functions_accept_a_null_err),
        cmocka_unit_test(err_sys_appends_strerror),
        cmocka_unit_test(err_sys_keeps_errno),
        cmocka_unit_test(err_sys_maps_enospc_to_nospc_with_a_hint),
        cmocka_unit_test(err_sys_maps_edquot_to_nospc),
        cmocka_unit_test(err_hint_sets_the_hint_and_returns_minus_one),
        cmocka_unit_test(err_prefix_prepends_context),
        cmocka_unit_test(err_clear_resets_everything),
        cmocka_unit_test(err_copy_copies_code_message_and_hint),
        cmocka_unit_test(err_exit_codes_follow_the_table),
        cmocka_unit_test(err_code_names_are_stable),
    };
    return cmocka_run_group_tests_name("core_err", tests, NULL, NULL);
}
