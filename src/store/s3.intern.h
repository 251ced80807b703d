/* The S3 driver's parsed location, for the driver, the CLI's location
 * builder and the unit tests. */
#ifndef SM_STORE_S3_INTERN_H
#define SM_STORE_S3_INTERN_H

#include "core/err.h"

#include <stdint.h>

typedef struct s3_settings {
    char *bucket;           /* 3-63 of [a-z0-9.-] */
    char *prefix;           /* "" or "seg/seg/" (always ends with '/') */
    char *endpoint;         /* NULL: from the environment or AWS; else "scheme://host[:port]" */
    char *region;           /* NULL: from the environment or us-east-1 */
    int path_style;         /* -1: default (1 with a custom endpoint) */
    char *storage_class;    /* NULL: none sent */
    char *sse;              /* NULL, "AES256" or "aws:kms" */
    char *sse_kms_key_id;   /* with sse=aws:kms only */
    char *credentials_file; /* NULL: environment, then ~/.aws/credentials */
    char *profile;          /* NULL: $AWS_PROFILE or "default" */
    int content_md5;        /* 1: send Content-MD5 on uploads (default) */
    uint64_t part_size;     /* multipart part size */
    uint64_t multipart_threshold;
    unsigned parallel;      /* parts in flight per upload */
    unsigned retries;       /* retries after the first attempt */
    unsigned retry_base_ms; /* first back-off delay */
    unsigned timeout;       /* seconds a transfer may stall */
    uint64_t readahead;     /* window fetched by sequential reads of packs (0: off) */
    uint64_t cache;         /* memory for those windows */
} s3_settings;

#define S3_MIN_PART_SIZE (5ull << 20)
#define S3_MAX_PARTS 10000u

/* Parses "s3://BUCKET[/PREFIX][?NAME=VALUE&...]" (see s3.h). *out is the
 * caller's (s3_settings_free). 0, or -1 with err set (SM_E_USAGE). Reads no
 * environment: unset settings keep their "default" markers. */
int s3_settings_parse(s3_settings **out, const char *location, sm_err *err);
void s3_settings_free(s3_settings *s);

/* The canonical location of s: "s3://bucket[/prefix]" plus every setting
 * that differs from its default, in a fixed order. Caller frees. */
char *s3_settings_format(const s3_settings *s);

#endif
