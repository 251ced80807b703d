#include "repo/tree.h"

#include "repo/repo.intern.h"

#include "core/mem.h"
#include "core/util.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static const char *type_names[] = {"file", "dir", "symlink", "fifo", "chardev", "blockdev", "socket"};

const char *node_type_name(node_type t)
{
    return (unsigned)t < 7 ? type_names[t] : "?";
}

char node_type_char(node_type t)
{
    static const char c[] = "fdlpcbs";
    return (unsigned)t < 7 ? c[t] : '?';
}

int node_type_from_mode(mode_t m, node_type *t)
{
    if (S_ISREG(m))
        *t = NODE_FILE;
    else if (S_ISDIR(m))
        *t = NODE_DIR;
    else if (S_ISLNK(m))
        *t = NODE_SYMLINK;
    else if (S_ISFIFO(m))
        *t = NODE_FIFO;
    else if (S_ISCHR(m))
        *t = NODE_CHR;
    else if (S_ISBLK(m))
        *t = NODE_BLK;
    else if (S_ISSOCK(m))
        *t = NODE_SOCK;
    else
        return -1;
    return 0;
}

int tree_name_ok(const char *name)
{
    if (!name || !*name || strchr(name, '/'))
        return 0;
    if (!strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    return 1;
}

void tree_node_release(tree_node *n)
{
    free(n->name);
    free(n->content);
    free(n->target);
    for (size_t i = 0; i < n->nxattrs; i++) {
        free(n->xattrs[i].name);
        free(n->xattrs[i].value);
    }
    free(n->xattrs);
    memset(n, 0, sizeof(*n));
}

void tree_release(tree *t)
{
    for (size_t i = 0; i < t->n; i++)
        tree_node_release(&t->nodes[i]);
    free(t->nodes);
    t->nodes = NULL;
    t->n = t->cap = 0;
}

tree_node *tree_add(tree *t)
{
    SM_GROW(t->nodes, t->cap, t->n + 1);
    memset(&t->nodes[t->n], 0, sizeof(tree_node));
    return &t->nodes[t->n++];
}

void tree_node_add_xattr(tree_node *n, const char *name, const void *value, size_t len)
{
    tree_xattr *x;
    n->xattrs = sm_xrealloc(n->xattrs, (n->nxattrs + 1) * sizeof(*n->xattrs));
    x = &n->xattrs[n->nxattrs++];
    x->name = sm_xstrdup(name);
    x->value = sm_xmemdup(value, len ? len : 1);
    x->len = len;
}

void tree_node_add_content(tree_node *n, const blob_id *id)
{
    SM_GROW(n->content, n->capcontent, n->ncontent + 1);
    n->content[n->ncontent++] = *id;
}

static int cmp_node(const void *a, const void *b)
{
    return strcmp(((const tree_node *)a)->name, ((const tree_node *)b)->name);
}

static int cmp_xattr(const void *a, const void *b)
{
    return strcmp(((const tree_xattr *)a)->name, ((const tree_xattr *)b)->name);
}

void tree_sort(tree *t)
{
    if (t->n > 1)
        qsort(t->nodes, t->n, sizeof(*t->nodes), cmp_node);
}

const tree_node *tree_find(const tree *t, const char *name)
{
    size_t lo = 0, hi = t->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(t->nodes[mid].name, name);
        if (c == 0)
            return &t->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Strings that are not valid UTF-8 (file names are bytes) go as base64
 * under "<key>_b64". */
static void set_bytes(json_t *o, const char *key, const char *s)
{
    json_t *v = json_string(s);
    if (v) {
        json_object_set_new(o, key, v);
    } else {
        char *b = sm_b64_encode((const unsigned char *)s, strlen(s));
        char k[64];
        snprintf(k, sizeof(k), "%s_b64", key);
        json_object_set_new(o, k, json_string(b));
        free(b);
    }
}

static json_t *id_json(const blob_id *id)
{
    char hex[65];
    blob_id_hex(id, hex);
    return json_string(hex);
}

json_t *tree_node_to_json(const tree_node *n)
{
    json_t *o = json_object();
    char hex[65];

    set_bytes(o, "name", n->name);
    json_object_set_new(o, "type", json_string(node_type_name(n->type)));
    json_object_set_new(o, "mode", json_integer(n->mode));
    json_object_set_new(o, "uid", json_integer(n->uid));
    json_object_set_new(o, "gid", json_integer(n->gid));
    json_object_set_new(o, "mtime", json_pack("[I,i]", (json_int_t)n->mtime_s, (int)n->mtime_ns));
    json_object_set_new(o, "ctime", json_pack("[I,i]", (json_int_t)n->ctime_s, (int)n->ctime_ns));
    json_object_set_new(o, "inode", json_integer((json_int_t)n->inode));
    json_object_set_new(o, "dev", json_integer((json_int_t)n->dev));
    json_object_set_new(o, "nlink", json_integer((json_int_t)n->nlink));
    if (n->type == NODE_FILE) {
        json_t *c = json_array();
        json_object_set_new(o, "size", json_integer((json_int_t)n->size));
        sm_hex(hex, n->sha256, 32);
        json_object_set_new(o, "sha256", json_string(hex));
        for (size_t i = 0; i < n->ncontent; i++)
            json_array_append_new(c, id_json(&n->content[i]));
        json_object_set_new(o, "content", c);
    } else if (n->type == NODE_DIR) {
        json_object_set_new(o, "subtree", id_json(&n->subtree));
    } else if (n->type == NODE_SYMLINK) {
        set_bytes(o, "target", n->target ? n->target : "");
    } else if (n->type == NODE_CHR || n->type == NODE_BLK) {
        json_object_set_new(o, "rdev", json_integer((json_int_t)n->rdev));
    }
    if (n->nxattrs) {
        json_t *xa = json_array();
        for (size_t i = 0; i < n->nxattrs; i++) {
            json_t *x = json_object();
            char *b = sm_b64_encode(n->xattrs[i].value, n->xattrs[i].len);
            set_bytes(x, "name", n->xattrs[i].name);
            json_object_set_new(x, "value", json_string(b));
            free(b);
            json_array_append_new(xa, x);
        }
        json_object_set_new(o, "xattrs", xa);
    }
    return o;
}

int tree_encode(const tree *t, sm_buf *out, sm_err *err)
{
    json_t *doc = json_object(), *arr = json_array();
    char *s;
    int rc;

    for (size_t i = 0; i < t->n; i++)
        json_array_append_new(arr, tree_node_to_json(&t->nodes[i]));
    json_object_set_new(doc, "nodes", arr);
    s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s)
        return sm_err_set(err, SM_E_INTERNAL, "cannot encode a tree as JSON");
    rc = sm_buf_add(out, s, strlen(s), err);
    free(s);
    return rc;
}

/* Reads "key" or "key_b64" into a fresh string. */
static char *get_bytes(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    char k[64];

    if (json_is_string(v))
        return sm_xstrndup(json_string_value(v), json_string_length(v));
    snprintf(k, sizeof(k), "%s_b64", key);
    v = json_object_get(o, k);
    if (json_is_string(v)) {
        sm_buf b = SM_BUF_INIT;
        if (sm_b64_decode(&b, json_string_value(v), NULL) < 0 || memchr(b.data, 0, b.len)) {
            sm_buf_release(&b);
            return NULL;
        }
        return sm_buf_detach(&b, NULL);
    }
    return NULL;
}

static int get_int(json_t *o, const char *key, int64_t *v)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j))
        return -1;
    *v = json_integer_value(j);
    return 0;
}

static int get_time(json_t *o, const char *key, int64_t *s, int32_t *ns)
{
    json_t *j = json_object_get(o, key);
    if (!json_is_array(j) || json_array_size(j) != 2 || !json_is_integer(json_array_get(j, 0)) ||
        !json_is_integer(json_array_get(j, 1)))
        return -1;
    *s = json_integer_value(json_array_get(j, 0));
    *ns = (int32_t)json_integer_value(json_array_get(j, 1));
    return 0;
}

static int parse_id(json_t *v, blob_id *id)
{
    return json_is_string(v) ? blob_id_parse(id, json_string_value(v)) : -1;
}

static int node_from_json(tree_node *n, json_t *o, const char *what, size_t idx, sm_err *err)
{
    json_t *type = json_object_get(o, "type"), *xa;
    int64_t v;
    int t;

#define BAD(why) return sm_err_set(err, SM_E_CORRUPT, "tree %s is damaged: entry %zu %s", what, idx, why)
    if (!json_is_object(o))
        BAD("is not an object");
    n->name = get_bytes(o, "name");
    if (!n->name || !tree_name_ok(n->name))
        BAD("has an unsafe or missing name");
    if (!json_is_string(type))
        BAD("has no type");
    for (t = 0; t < 7; t++)
        if (!strcmp(json_string_value(type), type_names[t]))
            break;
    if (t == 7)
        BAD("has an unknown type");
    n->type = (node_type)t;
    if (get_int(o, "mode", &v) < 0 || v < 0 || v > 07777)
        BAD("has a bad mode");
    n->mode = (uint32_t)v;
    if (get_int(o, "uid", &v) < 0 || v < 0 || v > UINT32_MAX)
        BAD("has a bad uid");
    n->uid = (uint32_t)v;
    if (get_int(o, "gid", &v) < 0 || v < 0 || v > UINT32_MAX)
        BAD("has a bad gid");
    n->gid = (uint32_t)v;
    if (get_time(o, "mtime", &n->mtime_s, &n->mtime_ns) < 0 ||
        get_time(o, "ctime", &n->ctime_s, &n->ctime_ns) < 0)
        BAD("has a bad time");
    if (get_int(o, "inode", &v) == 0)
        n->inode = (uint64_t)v;
    if (get_int(o, "dev", &v) == 0)
        n->dev = (uint64_t)v;
    if (get_int(o, "nlink", &v) == 0)
        n->nlink = (uint64_t)v;
    if (n->type == NODE_FILE) {
        json_t *c = json_object_get(o, "content"), *sha = json_object_get(o, "sha256");
        if (get_int(o, "size", &v) < 0 || v < 0)
            BAD("has a bad size");
        n->size = (uint64_t)v;
        if (!json_is_string(sha) || sm_unhex(n->sha256, json_string_value(sha), 32) < 0)
            BAD("has a bad sha256");
        n->has_sha = 1;
        if (!json_is_array(c))
            BAD("has no content list");
        n->content = sm_xcalloc(json_array_size(c) ? json_array_size(c) : 1, sizeof(blob_id));
        n->capcontent = json_array_size(c);
        for (size_t i = 0; i < json_array_size(c); i++)
            if (parse_id(json_array_get(c, i), &n->content[n->ncontent++]) < 0)
                BAD("has a bad content id");
    } else if (n->type == NODE_DIR) {
        if (parse_id(json_object_get(o, "subtree"), &n->subtree) < 0)
            BAD("has a bad subtree id");
        n->has_subtree = 1;
    } else if (n->type == NODE_SYMLINK) {
        n->target = get_bytes(o, "target");
        if (!n->target)
            BAD("has no link target");
    } else if (n->type == NODE_CHR || n->type == NODE_BLK) {
        if (get_int(o, "rdev", &v) < 0)
            BAD("has no device number");
        n->rdev = (uint64_t)v;
    }
    xa = json_object_get(o, "xattrs");
    if (xa) {
        if (!json_is_array(xa))
            BAD("has bad xattrs");
        for (size_t i = 0; i < json_array_size(xa); i++) {
            json_t *x = json_array_get(xa, i);
            char *name = json_is_object(x) ? get_bytes(x, "name") : NULL;
            json_t *val = json_is_object(x) ? json_object_get(x, "value") : NULL;
            sm_buf b = SM_BUF_INIT;
            if (!name || !json_is_string(val) || sm_b64_decode(&b, json_string_value(val), NULL) < 0) {
                free(name);
                sm_buf_release(&b);
                BAD("has a bad xattr");
            }
            tree_node_add_xattr(n, name, b.data ? b.data : (unsigned char *)"", b.len);
            free(name);
            sm_buf_release(&b);
        }
        qsort(n->xattrs, n->nxattrs, sizeof(*n->xattrs), cmp_xattr);
    }
    return 0;
#undef BAD
}

int tree_node_from_json(tree_node *n, json_t *o, const char *what, sm_err *err)
{
    int rc = node_from_json(n, o, what, 0, err);
    if (rc < 0)
        tree_node_release(n);
    return rc;
}

int tree_decode(tree *t, const unsigned char *p, size_t n, const char *what, sm_err *err)
{
    json_error_t je;
    json_t *doc = json_loadb((const char *)p, n, JSON_REJECT_DUPLICATES, &je), *arr;
    int rc = -1;

    if (!doc)
        return sm_err_set(err, SM_E_CORRUPT, "tree %s is damaged: %s", what, je.text);
    arr = json_object_get(doc, "nodes");
    if (!json_is_array(arr)) {
        sm_err_set(err, SM_E_CORRUPT, "tree %s is damaged: no node list", what);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(arr); i++) {
        tree_node *node = tree_add(t);
        if (node_from_json(node, json_array_get(arr, i), what, i, err) < 0)
            goto out;
        if (i > 0 && strcmp(t->nodes[i - 1].name, node->name) >= 0) {
            sm_err_set(err, SM_E_CORRUPT, "tree %s is damaged: entries not sorted or duplicated",
                       what);
            goto out;
        }
    }
    rc = 0;
out:
    json_decref(doc);
    if (rc < 0)
        tree_release(t);
    return rc;
}

size_t tree_digest_line_split(sm_buf *out, const char *path, const tree_node *n)
{
    char hex[65];
    unsigned char d[32];
    size_t at = SIZE_MAX;

    sm_buf_putf(out, "%c %04o %llu ", node_type_char(n->type), (unsigned)n->mode,
                (unsigned long long)(n->type == NODE_FILE ? n->size : 0));
    if (n->type == NODE_FILE) {
        at = out->len;
    } else if (n->type == NODE_SYMLINK) {
        crypto_sha256(n->target, strlen(n->target), d);
        sm_hex(hex, d, 32);
        sm_buf_puts(out, hex);
    } else {
        sm_buf_puts(out, "-");
    }
    for (size_t i = 0; i < n->nxattrs; i++) {
        /* only user.* attributes travel between hosts (security.* labels do not) */
        if (strncmp(n->xattrs[i].name, "user.", 5) != 0)
            continue;
        crypto_sha256(n->xattrs[i].value, n->xattrs[i].len, d);
        sm_hex(hex, d, 32);
        sm_buf_putf(out, " x:%s=%s", n->xattrs[i].name, hex);
    }
    sm_buf_putc(out, ' ');
    sm_buf_puts(out, path);
    sm_buf_putc(out, '\n');
    return at;
}

void tree_digest_line(sm_buf *out, const char *path, const tree_node *n)
{
    size_t start = out->len;
    size_t at = tree_digest_line_split(out, path, n);
    char hex[65];

    if (at == SIZE_MAX)
        return;
    (void)start;
    sm_hex(hex, n->sha256, 32);
    sm_buf_grow(out, 64, NULL);
    memmove(out->data + at + 64, out->data + at, out->len - at + 1);
    memcpy(out->data + at, hex, 64);
    out->len += 64;
}
