/* Portable archives: one tar (gzip, zstd or no compression; optionally
 * encrypted as OpenPGP by gpg) that stock tools restore without SupaManager:
 *
 *   metadata.json     what the backup is, with every part's SHA-256
 *   database.dump     pg_dump custom format (pg_restore reads it)
 *   globals.sql       pg_dumpall --roles-only
 *   storage/...       the storage tree, modes, times, owners, user.* xattrs (pax)
 *   config/...        the configuration files
 *
 * Export streams from a repository snapshot (no temporary copy). Import
 * treats the archive as hostile: absolute paths, "..", links leaving the tree,
 * hard links to outside, devices and fifos, oversized or malformed
 * metadata.json, checksum mismatches and non-archives are refused with a
 * clear message, and nothing is written outside the destination directory.
 */
#ifndef SM_JOB_ARCHIVE_H
#define SM_JOB_ARCHIVE_H

#include "core/err.h"
#include "repo/repo.h"

#include <jansson.h>
#include <stdint.h>

/* metadata.json: "format" and the "version" this code writes and reads.
 * Import (and export, before writing anything) requires these fields:
 * format (string), version (integer), backup_id (string), type (string),
 * created_at (string), checksums (object); project and sizes may be absent
 * or null, or else must be objects; other fields are free. checksums maps
 * each part the archive holds ("database", "globals", "storage", "config")
 * to "sha256:<64 hex>", and no other part: archive_export_checksums() gives
 * exactly that object. */
#define ARCHIVE_METADATA_FORMAT "supamanager-export"
#define ARCHIVE_METADATA_VERSION 1

typedef enum archive_compression {
    ARCHIVE_GZIP = 0,
    ARCHIVE_ZSTD,
    ARCHIVE_NONE,
} archive_compression;

/* "gzip" | "zstd" | "none" -> enum; -1 on anything else. */
int archive_compression_parse(const char *s, archive_compression *out);
/* File name suffix: ".tar.gz", ".tar.zst", ".tar" (plus ".gpg" when encrypted). */
const char *archive_suffix(archive_compression c);

typedef struct archive_export_opts {
    archive_compression compression;
    const char *passphrase; /* non-NULL: encrypt with gpg --symmetric (AES-256) */
    repo_progress_fn progress;
    void *progress_ud;
} archive_export_opts;

/* Writes the archive of snapshot s to out_fd: metadata.json (the given
 * document, written first), then database.dump, globals.sql, storage/ and
 * config/ from the snapshot's streams of those names (absent streams are
 * skipped). Every byte is verified on the way (chunk MACs, file and stream
 * checksums). *written gets the bytes written to out_fd (may be NULL).
 * The metadata is checked first (fields and checksums as described above);
 * fifos, sockets and device files are left out with a warning. Encrypting
 * needs gpg on PATH (Debian package gnupg); gpg gets the passphrase on a
 * pipe. A reader of out_fd that goes away gives an error, not SIGPIPE. On
 * failure out_fd holds a partial archive: the caller discards it. */
int archive_export(repo *r, const snapshot *s, json_t *metadata, int out_fd,
                   const archive_export_opts *o, uint64_t *written, sm_err *err);

/* The "checksums" object of metadata.json for an archive of snapshot s
 * (caller decrefs *out): {"database": "sha256:<hex>", ...} for each stream
 * the archive will hold. File streams: their SHA-256. Tree streams: the tree
 * digest of docs/FORMAT.md, which is the stream's "sha256" unless the tree
 * holds special files (fifos, devices, sockets): archives leave those out,
 * so their digest is then recomputed from the snapshot's trees (a walk of
 * the tree blobs, no file data). archive_export() refuses metadata whose
 * checksums differ from these. */
int archive_export_checksums(repo *r, const snapshot *s, json_t **out, sm_err *err);

typedef struct archive_import_limits {
    uint64_t max_total_bytes;   /* 0: no limit */
    uint64_t max_entries;       /* 0: 10 million */
    size_t max_metadata_bytes;  /* 0: 16 MiB */
} archive_import_limits;

/* Reads the archive at path (gzip, zstd, xz, bzip2 or plain tar; OpenPGP
 * encrypted when a passphrase is given or the file is OpenPGP), checks every
 * entry, extracts into dest (which must exist and be empty, and is private),
 * then verifies the checksums in metadata.json against what was extracted:
 * database.dump and globals.sql by SHA-256, storage/ and config/ by the tree
 * digest of docs/FORMAT.md. *metadata gets the parsed metadata.json (caller
 * decrefs). On failure dest may hold partial files: the caller removes it.
 * Private means checked: owned by the caller, no group or other access.
 * Entries whose path under dest would reach PATH_MAX are refused; only
 * user.* extended attributes are restored; owners only as root. */
int archive_import(const char *path, const char *dest, const char *passphrase,
                   const archive_import_limits *lim, json_t **metadata, sm_err *err);

/* The tree digest (docs/FORMAT.md) of a directory on disk, as a restore of a
 * tree stream would compute it: "<64 hex>". */
int archive_dir_digest(const char *path, char out[65], sm_err *err);

#endif
