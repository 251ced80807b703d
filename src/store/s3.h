/* The S3 driver: a repository in a bucket (AWS S3, Ceph RGW, MinIO, ...),
 * spoken to with libcurl and its built-in SigV4 signing.
 *
 *   store *st = NULL;
 *   if (store_open(&st, "s3://backups/abc123?endpoint=http://127.0.0.1:7480&region=us-east-1",
 *                  &err) < 0) ...
 *
 * A location is "s3://BUCKET[/PREFIX][?NAME=VALUE&...]". The prefix is made
 * of [A-Za-z0-9._-] segments; objects are "PREFIX/KEY", with the same keys
 * as on disk (docs/FORMAT.md). Settings (all optional; values
 * percent-encoded where needed):
 *
 *   endpoint=URL            default $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, or AWS
 *                           (https://s3.REGION.amazonaws.com)
 *   region=NAME             default $AWS_REGION, $AWS_DEFAULT_REGION, or us-east-1
 *   path_style=0|1          default 1 with a custom endpoint, 0 for AWS
 *   storage_class=NAME      x-amz-storage-class on every object written
 *   sse=AES256|aws:kms      x-amz-server-side-encryption; sse_kms_key_id=ID
 *   credentials=FILE        an AWS-style credentials file; profile=NAME
 *   content_md5=0|1         send Content-MD5 on uploads (default 1); the
 *                           payload's SHA-256 is always signed
 *                           (x-amz-content-sha256) and checked by the server
 *   part_size=SIZE          multipart part size (default 16M, at least 5M)
 *   multipart_threshold=SIZE  objects above it go multipart (default 64M)
 *   parallel=N              parts in flight per upload (default 4)
 *   retries=N               retries of a failed request (default 8)
 *   retry_base_ms=N         first back-off delay (default 100; doubles, with jitter)
 *   timeout=SECONDS         a transfer stalled this long is retried (default 60)
 *   readahead=SIZE          sequential reads of a pack fetch windows this big
 *                           (default 8M; 0: off) ...
 *   cache=SIZE              ... kept in at most this much memory (default 64M);
 *                           restores plan their reads (store_get_planned) and
 *                           skip both
 *
 * Credentials are never part of a location: they come from credentials=FILE,
 * else AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (/ AWS_SESSION_TOKEN), else
 * the shared credentials file ($AWS_SHARED_CREDENTIALS_FILE or
 * ~/.aws/credentials, profile $AWS_PROFILE or "default").
 *
 * Integrity: uploads carry their SHA-256 (signed) and MD5; downloads are
 * checked against Content-Length, the length asked for, and for whole
 * objects with a plain-MD5 ETag against that MD5. The repository's MACs
 * stay the final judge.
 *
 * Requests are retried (retries=, with exponential back-off and jitter: a
 * random wait between half and all of the doubled delay, at most 20 s) on
 * 5xx, 429, 408, RequestTimeout/SlowDown, connection failures, timeouts,
 * resets, short bodies, MD5 mismatches and unparsable listings; never on
 * other 4xx. Errors name the
 * bucket, the object, the HTTP status and S3's error code. Objects larger
 * than multipart_threshold go up in parts, parallel= at a time, as slices
 * of the caller's buffer (no copies); a failed upload is aborted, and
 * store_cleanup (run by prune) aborts uploads left by dead processes.
 *
 * Thread-safety: a store may be used from several threads; each request
 * takes a libcurl handle from a small pool.
 *
 * The process calls curl_global_init() and xmlInitParser() once from main().
 */
#ifndef SM_STORE_S3_H
#define SM_STORE_S3_H

#include "core/err.h"

typedef struct store store;

/* Opens an S3 store; no request is made. 0, or -1 with err set (a malformed
 * location, an unknown setting, missing credentials). */
int store_s3_open(store **out, const char *location, sm_err *err);

/* Composes a location from a base ("s3://bucket/prefix", possibly with
 * settings already) and the settings the CLI and API take as separate
 * fields; NULL or "" leaves a setting as it is. A non-S3 base with any
 * setting given is a usage error. *out is the caller's (free()). */
int s3_location_build(char **out, const char *base, const char *endpoint, const char *region,
                      const char *storage_class, sm_err *err);

/* What identifies the objects of a location, for telling whether two
 * locations share objects: *key = "BUCKET/PREFIX/" (whatever the endpoint,
 * so that two spellings of one server never pass for two), and *host_files
 * = 1 when the location names files or profiles of the host it runs on
 * (credentials=, profile=). 0, or -1 with err set (a malformed location). */
int s3_location_key(const char *location, char **key, int *host_files, sm_err *err);

#endif
