/* Directory trees as stored in the repository: one tree blob per directory,
 * a JSON document listing its entries sorted by name (bytewise). Files carry
 * their content as a list of blob ids plus the SHA-256 of the content;
 * directories point at their own tree blob. See docs/FORMAT.md.
 */
#ifndef SM_REPO_TREE_H
#define SM_REPO_TREE_H

#include "core/buf.h"
#include "core/err.h"
#include "repo/crypto.h"

#include <stdint.h>
#include <sys/stat.h>

typedef enum node_type {
    NODE_FILE = 0,
    NODE_DIR,
    NODE_SYMLINK,
    NODE_FIFO,
    NODE_CHR,
    NODE_BLK,
    NODE_SOCK,
} node_type;

typedef struct tree_xattr {
    char *name;
    unsigned char *value;
    size_t len;
} tree_xattr;

typedef struct tree_node {
    char *name; /* one path component: no '/', not "." or ".." */
    node_type type;
    uint32_t mode; /* permission bits (07777) */
    uint32_t uid, gid;
    int64_t mtime_s;
    int32_t mtime_ns;
    int64_t ctime_s;
    int32_t ctime_ns;
    uint64_t size;
    uint64_t inode, dev, nlink, rdev;
    int has_sha;
    unsigned char sha256[32]; /* of the content (files) */
    blob_id *content;         /* files: chunk ids in order */
    size_t ncontent, capcontent;
    int has_subtree;
    blob_id subtree; /* directories */
    char *target;    /* symlinks */
    tree_xattr *xattrs;
    size_t nxattrs;
} tree_node;

typedef struct tree {
    tree_node *nodes;
    size_t n, cap;
} tree;

#define TREE_INIT {NULL, 0, 0}

/* Maximum size of one encoded tree blob we accept when reading. */
#define TREE_MAX_BYTES (256u * 1024 * 1024)

const char *node_type_name(node_type t);
/* One-letter code used in the tree digest: f d l p c b s. */
char node_type_char(node_type t);
int node_type_from_mode(mode_t m, node_type *t);

/* Checks that a name is a single safe path component. */
int tree_name_ok(const char *name);

void tree_node_release(tree_node *n);
void tree_release(tree *t);
/* Appends a zeroed node and returns it (owned by t). */
tree_node *tree_add(tree *t);
void tree_node_add_xattr(tree_node *n, const char *name, const void *value, size_t len);
void tree_node_add_content(tree_node *n, const blob_id *id);
/* Finds a node by name (nodes must be sorted). */
const tree_node *tree_find(const tree *t, const char *name);
void tree_sort(tree *t);

int tree_encode(const tree *t, sm_buf *out, sm_err *err);
/* Parses and validates (names, types, ids). name is for messages. */
int tree_decode(tree *t, const unsigned char *p, size_t n, const char *what, sm_err *err);

/* The digest line of one entry (docs/FORMAT.md, "Tree digest"), fed to the
 * tree's SHA-256 in depth-first, name-sorted order. path is relative. */
void tree_digest_line(sm_buf *out, const char *path, const tree_node *n);
/* The same line without a file's hash: returns the offset where its 64 hex
 * digits belong (SIZE_MAX for entries other than files, whose line is whole). */
size_t tree_digest_line_split(sm_buf *out, const char *path, const tree_node *n);

#endif
