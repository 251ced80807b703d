/* The S3 driver's locations: parsing, defaults, canonical form, the CLI/API
 * builder, and opening without a request (credentials, addressing). */
#include "../unit_helpers.h"

#include "store/s3.h"
#include "store/s3.intern.h"
#include "store/store.h"

static s3_settings *parse_ok(const char *loc)
{
    s3_settings *s = NULL;
    sm_err err = SM_ERR_INIT;
    if (s3_settings_parse(&s, loc, &err) != 0)
        fail_msg("s3_settings_parse('%s'): %s", loc, err.msg);
    return s;
}

static void parse_fails(const char *loc, const char *msg)
{
    s3_settings *s = NULL;
    sm_err err = SM_ERR_INIT;
    assert_int_equal(s3_settings_parse(&s, loc, &err), -1);
    assert_err(&err, SM_E_USAGE, msg);
    assert_null(s);
}

static void a_bare_bucket_has_no_prefix_and_the_defaults(void **state)
{
    s3_settings *s = parse_ok("s3://my-bucket");
    (void)state;
    assert_string_equal(s->bucket, "my-bucket");
    assert_string_equal(s->prefix, "");
    assert_null(s->endpoint);
    assert_null(s->region);
    assert_int_equal(s->path_style, -1);
    assert_int_equal(s->content_md5, 1);
    assert_true(s->part_size == 16u << 20);
    assert_true(s->multipart_threshold == 64u << 20);
    assert_int_equal(s->parallel, 4);
    assert_int_equal(s->retries, 8);
    assert_true(s->readahead == 8u << 20);
    assert_true(s->cache == 64u << 20);
    s3_settings_free(s);
}

static void a_prefix_is_normalised_with_one_trailing_slash(void **state)
{
    s3_settings *s = parse_ok("s3://bkt/a/b.c/d_e-f//");
    (void)state;
    assert_string_equal(s->prefix, "a/b.c/d_e-f/");
    s3_settings_free(s);
    s = parse_ok("s3://bkt/");
    assert_string_equal(s->prefix, "");
    s3_settings_free(s);
}

static void settings_are_read_and_percent_decoded(void **state)
{
    s3_settings *s = parse_ok("s3://bkt/p?endpoint=http%3A%2F%2F127.0.0.1%3A7480/&region=eu-west-1"
                              "&path_style=0&storage_class=STANDARD_IA&sse=aws:kms"
                              "&sse_kms_key_id=k1&content_md5=0&part_size=8M"
                              "&multipart_threshold=32M&parallel=2&retries=3&retry_base_ms=5"
                              "&timeout=9&credentials=/etc/c&profile=backup&readahead=0"
                              "&cache=16M");
    (void)state;
    assert_string_equal(s->endpoint, "http://127.0.0.1:7480");
    assert_string_equal(s->region, "eu-west-1");
    assert_int_equal(s->path_style, 0);
    assert_string_equal(s->storage_class, "STANDARD_IA");
    assert_string_equal(s->sse, "aws:kms");
    assert_string_equal(s->sse_kms_key_id, "k1");
    assert_int_equal(s->content_md5, 0);
    assert_true(s->part_size == 8u << 20);
    assert_true(s->multipart_threshold == 32u << 20);
    assert_int_equal(s->parallel, 2);
    assert_int_equal(s->retries, 3);
    assert_int_equal(s->retry_base_ms, 5);
    assert_int_equal(s->timeout, 9);
    assert_string_equal(s->credentials_file, "/etc/c");
    assert_string_equal(s->profile, "backup");
    assert_true(s->readahead == 0);
    assert_true(s->cache == 16u << 20);
    s3_settings_free(s);
}

static void bad_locations_are_refused_with_the_reason(void **state)
{
    (void)state;
    parse_fails("/var/backups", "'/var/backups' is not an S3 location (s3://BUCKET[/PREFIX])");
    parse_fails("s3://ab/x", "invalid S3 bucket name in 's3://ab/x'");
    parse_fails("s3://Upper/x", "invalid S3 bucket name in 's3://Upper/x'");
    parse_fails("s3://bkt/../x", "invalid S3 prefix in 's3://bkt/../x'");
    parse_fails("s3://bkt/a b", "invalid S3 prefix in 's3://bkt/a b'");
    parse_fails("s3://bkt/x?color=red", "unknown S3 setting 'color'");
    parse_fails("s3://bkt/x?region", "S3 setting 'region' has no value (NAME=VALUE)");
    parse_fails("s3://bkt/x?region=%zz", "S3 setting 'region' has a bad %-escape");
    parse_fails("s3://bkt/x?region=", "S3 setting region is empty");
    parse_fails("s3://bkt/x?storage_class=bad%20class",
                "S3 setting storage_class must be letters, digits, '-' and '_' (like us-east-1 "
                "or STANDARD_IA)");
    parse_fails("s3://bkt/x?region=us%0D%0Ax-evil:1",
                "S3 setting region must be letters, digits, '-' and '_' (like us-east-1 or "
                "STANDARD_IA)");
    parse_fails("s3://bkt/x?endpoint=ftp://h",
                "S3 endpoint 'ftp://h' is not a URL like https://HOST[:PORT]");
    parse_fails("s3://bkt/x?endpoint=http://h/path",
                "S3 endpoint 'http://h/path' is not a URL like https://HOST[:PORT]");
    parse_fails("s3://bkt/x?part_size=1M",
                "S3 setting part_size=1M must be a size from 5 MiB to 5 GiB (like 16M)");
    parse_fails("s3://bkt/x?parallel=0", "S3 setting parallel=0 must be a number from 1 to 64");
    parse_fails("s3://bkt/x?path_style=yes", "S3 setting path_style=yes must be 0 or 1");
    parse_fails("s3://bkt/x?sse=rot13", "S3 setting sse=rot13 must be AES256 or aws:kms");
    parse_fails("s3://bkt/x?sse_kms_key_id=k", "S3 setting sse_kms_key_id needs sse=aws:kms");
}

static void the_canonical_form_keeps_only_what_differs_from_the_defaults(void **state)
{
    s3_settings *s = parse_ok("s3://bkt/a/b/?parallel=4&region=r1&endpoint=http://h:1&"
                              "part_size=32M&path_style=1&storage_class=GLACIER_IR");
    char *f = s3_settings_format(s);
    (void)state;
    assert_string_equal(f, "s3://bkt/a/b?endpoint=http://h:1&region=r1&path_style=1"
                           "&storage_class=GLACIER_IR&part_size=32M");
    free(f);
    s3_settings_free(s);
    s = parse_ok("s3://bkt");
    f = s3_settings_format(s);
    assert_string_equal(f, "s3://bkt");
    free(f);
    s3_settings_free(s);
}

static void formatting_then_parsing_gives_the_same_settings(void **state)
{
    s3_settings *s = parse_ok("s3://bkt/p?credentials=/a%26b/c%3Fd&profile=x%20y&retries=0"
                              "&readahead=2M");
    char *f = s3_settings_format(s);
    s3_settings *t = parse_ok(f);
    (void)state;
    assert_string_equal(t->credentials_file, "/a&b/c?d");
    assert_string_equal(t->profile, "x y");
    assert_int_equal(t->retries, 0);
    assert_true(t->readahead == 2u << 20);
    free(f);
    s3_settings_free(s);
    s3_settings_free(t);
}

static void the_builder_folds_cli_fields_into_the_location(void **state)
{
    char *out = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;
    assert_int_equal(s3_location_build(&out, "s3://bkt/p?region=old", "http://127.0.0.1:7480/",
                                       "new", "STANDARD_IA", &err),
                     0);
    assert_string_equal(out, "s3://bkt/p?endpoint=http://127.0.0.1:7480&region=new"
                             "&storage_class=STANDARD_IA");
    free(out);
    assert_int_equal(s3_location_build(&out, "s3://bkt/p?region=old", NULL, "", NULL, &err), 0);
    assert_string_equal(out, "s3://bkt/p?region=old");
    free(out);
    assert_int_equal(s3_location_build(&out, "/srv/backups", NULL, NULL, NULL, &err), 0);
    assert_string_equal(out, "/srv/backups");
    free(out);
    assert_int_equal(s3_location_build(&out, NULL, NULL, NULL, NULL, &err), 0);
    assert_null(out);
}

static void the_builder_refuses_s3_fields_without_an_s3_location(void **state)
{
    char *out = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;
    assert_int_equal(s3_location_build(&out, "/srv/backups", NULL, "eu-west-1", NULL, &err), -1);
    assert_err(&err, SM_E_USAGE, "S3 settings need an S3 store location");
    assert_string_equal(err.hint, "Give the store as s3://BUCKET[/PREFIX] (--store, or the "
                                  "API's store field).");
    assert_null(out);
}

static void open_names_the_location_without_settings_or_secrets(void **state)
{
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;
    setenv("AWS_ACCESS_KEY_ID", "AK", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
    assert_int_equal(store_open(&st, "s3://bkt/a/b?endpoint=http://127.0.0.1:1", &err), 0);
    assert_string_equal(store_location(st), "s3://bkt/a/b");
    store_free(st);
}

static void open_without_credentials_says_where_to_put_them(void **state)
{
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    (void)state;
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
    assert_int_equal(store_open(&st, "s3://bkt/x", &err), -1);
    assert_err(&err, SM_E_AUTH, "no S3 credentials for 's3://bkt/x'");
    assert_null(st);
    unsetenv("AWS_SHARED_CREDENTIALS_FILE");
}

static void open_reads_a_credentials_file_profile(void **state)
{
    char *dir = th_tmpdir(), *path = th_path(dir, "creds"), *loc;
    store *st = NULL;
    sm_err err = SM_ERR_INIT;
    FILE *f = fopen(path, "w");
    (void)state;
    assert_non_null(f);
    fputs("[default]\naws_access_key_id = A\n[profile backup]\naws_access_key_id=B\n"
          "aws_secret_access_key = S\n",
          f);
    fclose(f);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    loc = sm_xasprintf("s3://bkt?credentials=%s&profile=backup", path);
    assert_int_equal(store_open(&st, loc, &err), 0);
    store_free(st);
    free(loc);
    loc = sm_xasprintf("s3://bkt?credentials=%s", path); /* [default] has no secret */
    assert_int_equal(store_open(&st, loc, &err), -1);
    assert_int_equal(err.code, SM_E_AUTH);
    free(loc);
    free(path);
    th_rmdir(dir);
}

#define T(f) cmocka_unit_test(f)
int main(void)
{
    const struct CMUnitTest tests[] = {
        T(a_bare_bucket_has_no_prefix_and_the_defaults),
        T(a_prefix_is_normalised_with_one_trailing_slash),
        T(settings_are_read_and_percent_decoded),
        T(bad_locations_are_refused_with_the_reason),
        T(the_canonical_form_keeps_only_what_differs_from_the_defaults),
        T(formatting_then_parsing_gives_the_same_settings),
        T(the_builder_folds_cli_fields_into_the_location),
        T(the_builder_refuses_s3_fields_without_an_s3_location),
        T(open_names_the_location_without_settings_or_secrets),
        T(open_without_credentials_says_where_to_put_them),
        T(open_reads_a_credentials_file_profile),
    };
    return cmocka_run_group_tests_name("store_s3", tests, NULL, NULL);
}
