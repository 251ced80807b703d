/* Tree blobs: JSON encoding and validation, and the tree digest lines. */
#include "../unit_helpers.h"

#include "core/util.h"
#include "repo/tree.h"

#include <jansson.h>

#define HEX64A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define HEX64B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static blob_id id_of(unsigned char v)
{
    blob_id id;
    memset(id.b, v, sizeof(id.b));
    id.b[0] = (unsigned char)(v ^ 0x5a);
    return id;
}

static void set_common(tree_node *n, const char *name, node_type type, uint32_t mode)
{
    n->name = sm_xstrdup(name);
    n->type = type;
    n->mode = mode;
    n->uid = 1000;
    n->gid = 100;
    n->mtime_s = 1795615387;
    n->mtime_ns = 123456789;
    n->ctime_s = 1795615388;
    n->ctime_ns = 5;
    n->inode = 4242;
    n->dev = 2049;
    n->nlink = 1;
}

/* A tree with one node of every kind, a non-UTF-8 name and xattrs. */
static void build_full_tree(tree *t)
{
    tree_node *n;
    blob_id a = id_of(1), b = id_of(2);

    n = tree_add(t);
    set_common(n, "file.txt", NODE_FILE, 0644);
    n->size = 12345;
    n->has_sha = 1;
    th_fill(n->sha256, 32, 1);
    tree_node_add_content(n, &a);
    tree_node_add_content(n, &b);
    tree_node_add_xattr(n, "user.b", "\x00\x01\xff", 3);
    tree_node_add_xattr(n, "user.a", "", 0);
    tree_node_add_xattr(n, "security.selinux", "ctx", 3);

    n = tree_add(t);
    set_common(n, "dir", NODE_DIR, 0755);
    n->has_subtree = 1;
    n->subtree = id_of(3);
    n->nlink = 3;

    n = tree_add(t);
    set_common(n, "link", NODE_SYMLINK, 0777);
    n->target = sm_xstrdup("../some/where");

    n = tree_add(t);
    set_common(n, "badlink", NODE_SYMLINK, 0777);
    n->target = sm_xstrdup("t\xfe\xfd"); /* not UTF-8 either */

    n = tree_add(t);
    set_common(n, "fifo", NODE_FIFO, 0600);

    n = tree_add(t);
    set_common(n, "tty", NODE_CHR, 0620);
    n->rdev = 0x0401;

    n = tree_add(t);
    set_common(n, "sda", NODE_BLK, 0660);
    n->rdev = 0x0800;

    n = tree_add(t);
    set_common(n, "sock", NODE_SOCK, 0755);

    n = tree_add(t);
    set_common(n, "\xff\xfe-latin1", NODE_FILE, 04755);
    n->size = 0;
    n->has_sha = 1;
    crypto_sha256("", 0, n->sha256);

    tree_sort(t);
}

static void assert_nodes_equal(const tree_node *a, const tree_node *b)
{
    assert_string_equal(a->name, b->name);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_true(a->mtime_s == b->mtime_s);
    assert_int_equal(a->mtime_ns, b->mtime_ns);
    assert_true(a->ctime_s == b->ctime_s);
    assert_int_equal(a->ctime_ns, b->ctime_ns);
    assert_true(a->inode == b->inode);
    assert_true(a->dev == b->dev);
    assert_true(a->nlink == b->nlink);
    if (a->type == NODE_FILE) {
        assert_true(a->size == b->size);
        assert_memory_equal(a->sha256, b->sha256, 32);
        assert_int_equal(a->ncontent, b->ncontent);
        for (size_t i = 0; i < a->ncontent; i++)
            assert_true(blob_id_eq(&a->content[i], &b->content[i]));
    }
    if (a->type == NODE_DIR)
        assert_true(blob_id_eq(&a->subtree, &b->subtree));
    if (a->type == NODE_SYMLINK)
        assert_string_equal(a->target, b->target);
    if (a->type == NODE_CHR || a->type == NODE_BLK)
        assert_true(a->rdev == b->rdev);
    assert_int_equal(a->nxattrs, b->nxattrs);
}

/* Decodes a hand-written JSON tree. */
static int decode_text(tree *t, const char *json, sm_err *err)
{
    return tree_decode(t, (const unsigned char *)json, strlen(json), "t1", err);
}

/* A valid directory node with the given name (a JSON string literal). */
#define DIR_NODE(name)                                                                             \
    "{\"name\":" name ",\"type\":\"dir\",\"mode\":493,\"uid\":0,\"gid\":0,"                        \
    "\"mtime\":[1,0],\"ctime\":[1,0],\"subtree\":\"" HEX64A "\"}"

/* ---- encode and decode ---- */

static void encode_then_decode_roundtrips_every_kind_of_node(void **state)
{
    tree t = TREE_INIT, back = TREE_INIT;
    sm_buf enc = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    build_full_tree(&t);
    assert_int_equal(tree_encode(&t, &enc, &err), 0);
    assert_int_equal(tree_decode(&back, enc.data, enc.len, "t1", &err), 0);
    assert_int_equal(back.n, t.n);
    for (size_t i = 0; i < t.n; i++)
        assert_nodes_equal(&t.nodes[i], &back.nodes[i]);
    sm_buf_release(&enc);
    tree_release(&t);
    tree_release(&back);
}

static void decode_sorts_xattrs_and_keeps_binary_values(void **state)
{
    tree t = TREE_INIT, back = TREE_INIT;
    sm_buf enc = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    const tree_node *n;
    (void)state;

    build_full_tree(&t);
    assert_int_equal(tree_encode(&t, &enc, &err), 0);
    assert_int_equal(tree_decode(&back, enc.data, enc.len, "t1", &err), 0);
    n = tree_find(&back, "file.txt");
    assert_non_null(n);
    assert_int_equal(n->nxattrs, 3);
    assert_string_equal(n->xattrs[0].name, "security.selinux");
    assert_string_equal(n->xattrs[1].name, "user.a");
    assert_int_equal(n->xattrs[1].len, 0);
    assert_string_equal(n->xattrs[2].name, "user.b");
    assert_int_equal(n->xattrs[2].len, 3);
    assert_memory_equal(n->xattrs[2].value, "\x00\x01\xff", 3);
    sm_buf_release(&enc);
    tree_release(&t);
    tree_release(&back);
}

static void non_utf8_names_and_targets_travel_as_base64(void **state)
{
    tree t = TREE_INIT, back = TREE_INIT;
    sm_buf enc = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    char *name_b64 = sm_b64_encode((const unsigned char *)"\xff\xfe-latin1", 9);
    char *target_b64 = sm_b64_encode((const unsigned char *)"t\xfe\xfd", 3);
    char want[128];
    (void)state;

    build_full_tree(&t);
    assert_int_equal(tree_encode(&t, &enc, &err), 0);
    snprintf(want, sizeof(want), "\"name_b64\":\"%s\"", name_b64);
    assert_non_null(strstr(sm_buf_str(&enc), want));
    snprintf(want, sizeof(want), "\"target_b64\":\"%s\"", target_b64);
    assert_non_null(strstr(sm_buf_str(&enc), want));
    assert_int_equal(tree_decode(&back, enc.data, enc.len, "t1", &err), 0);
    /* bytewise order: 0xff sorts after every ASCII name */
    assert_string_equal(back.nodes[back.n - 1].name, "\xff\xfe-latin1");
    assert_non_null(tree_find(&back, "\xff\xfe-latin1"));
    assert_string_equal(tree_find(&back, "badlink")->target, "t\xfe\xfd");
    free(name_b64);
    free(target_b64);
    sm_buf_release(&enc);
    tree_release(&t);
    tree_release(&back);
}

static void encode_of_an_empty_tree_decodes_to_no_nodes(void **state)
{
    tree t = TREE_INIT, back = TREE_INIT;
    sm_buf enc = SM_BUF_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(tree_encode(&t, &enc, &err), 0);
    assert_string_equal(sm_buf_str(&enc), "{\"nodes\":[]}");
    assert_int_equal(tree_decode(&back, enc.data, enc.len, "t1", &err), 0);
    assert_int_equal(back.n, 0);
    sm_buf_release(&enc);
}

static void decode_accepts_a_minimal_directory_node(void **state)
{
    tree t = TREE_INIT;
    sm_err err = SM_ERR_INIT;
    blob_id want;
    (void)state;

    assert_int_equal(decode_text(&t, "{\"nodes\":[" DIR_NODE("\"d\"") "]}", &err), 0);
    assert_int_equal(t.n, 1);
    assert_string_equal(t.nodes[0].name, "d");
    assert_int_equal(t.nodes[0].type, NODE_DIR);
    assert_int_equal(t.nodes[0].mode, 0755);
    assert_int_equal(blob_id_parse(&want, HEX64A), 0);
    assert_true(blob_id_eq(&t.nodes[0].subtree, &want));
    tree_release(&t);
}

/* ---- decode rejects ---- */

static void expect_corrupt(const char *json, const char *msg)
{
    tree t = TREE_INIT;
    sm_err err = SM_ERR_INIT;

    assert_int_equal(decode_text(&t, json, &err), -1);
    assert_err(&err, SM_E_CORRUPT, msg);
    /* nothing is left behind */
    assert_int_equal(t.n, 0);
    assert_null(t.nodes);
}

static void decode_rejects_unsorted_names(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"b\"") "," DIR_NODE("\"a\"") "]}",
                   "tree t1 is damaged: entries not sorted or duplicated");
}

static void decode_rejects_duplicate_names(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"a\"") "," DIR_NODE("\"a\"") "]}",
                   "tree t1 is damaged: entries not sorted or duplicated");
}

static void decode_rejects_dot_dot(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"..\"") "]}",
                   "tree t1 is damaged: entry 0 has an unsafe or missing name");
}

static void decode_rejects_dot(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"a\"") "," DIR_NODE("\".\"") "]}",
                   "tree t1 is damaged: entry 1 has an unsafe or missing name");
}

static void decode_rejects_a_name_with_a_slash(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"a/b\"") "]}",
                   "tree t1 is damaged: entry 0 has an unsafe or missing name");
}

static void decode_rejects_an_empty_name(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[" DIR_NODE("\"\"") "]}",
                   "tree t1 is damaged: entry 0 has an unsafe or missing name");
}

static void decode_rejects_a_base64_name_with_a_slash_or_nul(void **state)
{
    char json[1024];
    char *slash = sm_b64_encode((const unsigned char *)"../x", 4);
    char *nul = sm_b64_encode((const unsigned char *)"a\0b", 3);
    (void)state;

    snprintf(json, sizeof(json),
             "{\"nodes\":[{\"name_b64\":\"%s\",\"type\":\"fifo\",\"mode\":420,\"uid\":0,"
             "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
             slash);
    expect_corrupt(json, "tree t1 is damaged: entry 0 has an unsafe or missing name");
    snprintf(json, sizeof(json),
             "{\"nodes\":[{\"name_b64\":\"%s\",\"type\":\"fifo\",\"mode\":420,\"uid\":0,"
             "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
             nul);
    expect_corrupt(json, "tree t1 is damaged: entry 0 has an unsafe or missing name");
    free(slash);
    free(nul);
}

static void decode_rejects_a_bad_subtree_id(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"d\",\"type\":\"dir\",\"mode\":493,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0],\"subtree\":\"abc\"}]}",
                   "tree t1 is damaged: entry 0 has a bad subtree id");
}

static void decode_rejects_a_bad_content_id(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"f\",\"type\":\"file\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0],\"size\":1,\"sha256\":\"" HEX64B
                   "\",\"content\":[\"" HEX64A "\",\"zz" HEX64A "\"]}]}",
                   "tree t1 is damaged: entry 0 has a bad content id");
}

static void decode_rejects_a_bad_sha256(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"f\",\"type\":\"file\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0],\"size\":1,\"sha256\":\"xyz\","
                   "\"content\":[]}]}",
                   "tree t1 is damaged: entry 0 has a bad sha256");
}

static void decode_rejects_an_unknown_type(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"x\",\"type\":\"door\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
                   "tree t1 is damaged: entry 0 has an unknown type");
}

static void decode_rejects_a_mode_beyond_07777(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"x\",\"type\":\"fifo\",\"mode\":4096,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
                   "tree t1 is damaged: entry 0 has a bad mode");
}

static void decode_rejects_a_symlink_without_target(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"l\",\"type\":\"symlink\",\"mode\":511,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
                   "tree t1 is damaged: entry 0 has no link target");
}

static void decode_rejects_a_device_without_number(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"c\",\"type\":\"chardev\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0]}]}",
                   "tree t1 is damaged: entry 0 has no device number");
}

static void decode_rejects_bad_xattrs(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"p\",\"type\":\"fifo\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1,0],\"ctime\":[1,0],"
                   "\"xattrs\":[{\"name\":\"user.a\",\"value\":\"!!!\"}]}]}",
                   "tree t1 is damaged: entry 0 has a bad xattr");
}

static void decode_rejects_a_missing_time(void **state)
{
    (void)state;
    expect_corrupt("{\"nodes\":[{\"name\":\"p\",\"type\":\"fifo\",\"mode\":420,\"uid\":0,"
                   "\"gid\":0,\"mtime\":[1],\"ctime\":[1,0]}]}",
                   "tree t1 is damaged: entry 0 has a bad time");
}

static void decode_rejects_a_document_without_nodes(void **state)
{
    (void)state;
    expect_corrupt("{\"entries\":[]}", "tree t1 is damaged: no node list");
    expect_corrupt("{\"nodes\":[1]}", "tree t1 is damaged: entry 0 is not an object");
}

static void decode_rejects_text_that_is_not_json(void **state)
{
    tree t = TREE_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(decode_text(&t, "{\"nodes\":[", &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_memory_equal(err.msg, "tree t1 is damaged: ", 20);
    assert_true(strlen(err.msg) > 20);
}

static void decode_rejects_duplicate_json_keys(void **state)
{
    tree t = TREE_INIT;
    sm_err err = SM_ERR_INIT;
    (void)state;

    assert_int_equal(decode_text(&t, "{\"nodes\":[],\"nodes\":[]}", &err), -1);
    assert_int_equal(err.code, SM_E_CORRUPT);
    assert_memory_equal(err.msg, "tree t1 is damaged: ", 20);
}

/* ---- names and types ---- */

static void name_ok_accepts_one_component_only(void **state)
{
    (void)state;
    assert_true(tree_name_ok("a"));
    assert_true(tree_name_ok("..."));
    assert_true(tree_name_ok(".hidden"));
    assert_true(tree_name_ok("\xff"));
    assert_false(tree_name_ok(""));
    assert_false(tree_name_ok(NULL));
    assert_false(tree_name_ok("."));
    assert_false(tree_name_ok(".."));
    assert_false(tree_name_ok("a/b"));
    assert_false(tree_name_ok("/"));
}

static void node_types_map_from_modes_and_to_letters(void **state)
{
    node_type t;
    (void)state;

    assert_int_equal(node_type_from_mode(S_IFREG | 0644, &t), 0);
    assert_int_equal(t, NODE_FILE);
    assert_int_equal(node_type_from_mode(S_IFDIR, &t), 0);
    assert_int_equal(t, NODE_DIR);
    assert_int_equal(node_type_from_mode(S_IFLNK, &t), 0);
    assert_int_equal(t, NODE_SYMLINK);
    assert_int_equal(node_type_from_mode(S_IFSOCK, &t), 0);
    assert_int_equal(t, NODE_SOCK);
    assert_int_equal(node_type_from_mode(0, &t), -1);
    assert_int_equal(node_type_char(NODE_FILE), 'f');
    assert_int_equal(node_type_char(NODE_DIR), 'd');
    assert_int_equal(node_type_char(NODE_SYMLINK), 'l');
    assert_int_equal(node_type_char(NODE_FIFO), 'p');
    assert_int_equal(node_type_char(NODE_CHR), 'c');
    assert_int_equal(node_type_char(NODE_BLK), 'b');
    assert_int_equal(node_type_char(NODE_SOCK), 's');
    assert_string_equal(node_type_name(NODE_CHR), "chardev");
    assert_string_equal(node_type_name((node_type)42), "?");
}

static void find_locates_nodes_in_a_sorted_tree(void **state)
{
    tree t = TREE_INIT;
    (void)state;

    build_full_tree(&t);
    for (size_t i = 0; i < t.n; i++)
        assert_ptr_equal(tree_find(&t, t.nodes[i].name), &t.nodes[i]);
    assert_null(tree_find(&t, "missing"));
    assert_null(tree_find(&t, ""));
    tree_release(&t);
    assert_int_equal(t.n, 0);
    assert_null(tree_find(&t, "x"));
}

/* ---- digest lines ---- */

static void digest_line_of_a_file_lists_mode_size_sha_and_user_xattrs(void **state)
{
    tree t = TREE_INIT;
    tree_node *n = tree_add(&t);
    sm_buf line = SM_BUF_INIT;
    char sha[65], xa[65], want[512];
    (void)state;

    set_common(n, "x", NODE_FILE, 0644);
    n->size = 5;
    crypto_sha256("hello", 5, n->sha256);
    tree_node_add_xattr(n, "security.selinux", "label", 5);
    tree_node_add_xattr(n, "trusted.t", "t", 1);
    tree_node_add_xattr(n, "user.a", "va", 2);
    sm_hex(sha, n->sha256, 32);
    crypto_sha256_hex("va", 2, xa);
    snprintf(want, sizeof(want), "f 0644 5 %s x:user.a=%s dir/x\n", sha, xa);
    tree_digest_line(&line, "dir/x", n);
    assert_string_equal(sm_buf_str(&line), want);
    sm_buf_release(&line);
    tree_release(&t);
}

static void digest_line_of_a_directory_has_no_size_or_hash(void **state)
{
    tree t = TREE_INIT;
    tree_node *n = tree_add(&t);
    sm_buf line = SM_BUF_INIT;
    (void)state;

    set_common(n, "d", NODE_DIR, 0755);
    n->size = 4096; /* a directory's size is not part of the digest */
    tree_digest_line(&line, "a/d", n);
    assert_string_equal(sm_buf_str(&line), "d 0755 0 - a/d\n");
    sm_buf_release(&line);
    tree_release(&t);
}

static void digest_line_of_a_symlink_hashes_its_target(void **state)
{
    tree t = TREE_INIT;
    tree_node *n = tree_add(&t);
    sm_buf line = SM_BUF_INIT;
    char want[256], h[65];
    (void)state;

    set_common(n, "l", NODE_SYMLINK, 0777);
    n->target = sm_xstrdup("target/file");
    crypto_sha256_hex("target/file", 11, h);
    snprintf(want, sizeof(want), "l 0777 0 %s l\n", h);
    tree_digest_line(&line, "l", n);
    assert_string_equal(sm_buf_str(&line), want);
    sm_buf_release(&line);
    tree_release(&t);
}

static void digest_line_shows_special_bits_and_special_files(void **state)
{
    tree t = TREE_INIT;
    tree_node *f = tree_add(&t), *p = tree_add(&t);
    sm_buf line = SM_BUF_INIT;
    char want[256], h[65];
    (void)state;

    set_common(f, "suid", NODE_FILE, 04755);
    crypto_sha256("", 0, f->sha256);
    sm_hex(h, f->sha256, 32);
    snprintf(want, sizeof(want), "f 4755 0 %s suid\n", h);
    tree_digest_line(&line, "suid", f);
    assert_string_equal(sm_buf_str(&line), want);
    set_common(p, "fifo", NODE_FIFO, 0600);
    tree_node_add_xattr(p, "user.z", "", 0);
    crypto_sha256_hex("", 0, h);
    snprintf(want, sizeof(want), "p 0600 0 - x:user.z=%s fifo\n", h);
    sm_buf_reset(&line);
    tree_digest_line(&line, "fifo", p);
    assert_string_equal(sm_buf_str(&line), want);
    sm_buf_release(&line);
    tree_release(&t);
}

static void digest_line_appends_to_the_buffer(void **state)
{
    tree t = TREE_INIT;
    tree_node *n = tree_add(&t);
    sm_buf line = SM_BUF_INIT;
    (void)state;

    set_common(n, "s", NODE_SOCK, 0755);
    tree_digest_line(&line, "s", n);
    tree_digest_line(&line, "t", n);
    assert_string_equal(sm_buf_str(&line), "s 0755 0 - s\ns 0755 0 - t\n");
    sm_buf_release(&line);
    tree_release(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(encode_then_decode_roundtrips_every_kind_of_node),
        cmocka_unit_test(decode_sorts_xattrs_and_keeps_binary_values),
        cmocka_unit_test(non_utf8_names_and_targets_travel_as_base64),
        cmocka_unit_test(encode_of_an_empty_tree_decodes_to_no_nodes),
        cmocka_unit_test(decode_accepts_a_minimal_directory_node),
        cmocka_unit_test(decode_rejects_unsorted_names),
        cmocka_unit_test(decode_rejects_duplicate_names),
        cmocka_unit_test(decode_rejects_dot_dot),
        cmocka_unit_test(decode_rejects_dot),
        cmocka_unit_test(decode_rejects_a_name_with_a_slash),
        cmocka_unit_test(decode_rejects_an_empty_name),
        cmocka_unit_test(decode_rejects_a_base64_name_with_a_slash_or_nul),
        cmocka_unit_test(decode_rejects_a_bad_subtree_id),
        cmocka_unit_test(decode_rejects_a_bad_content_id),
        cmocka_unit_test(decode_rejects_a_bad_sha256),
        cmocka_unit_test(decode_rejects_an_unknown_type),
        cmocka_unit_test(decode_rejects_a_mode_beyond_07777),
        cmocka_unit_test(decode_rejects_a_symlink_without_target),
        cmocka_unit_test(decode_rejects_a_device_without_number),
        cmocka_unit_test(decode_rejects_bad_xattrs),
        cmocka_unit_test(decode_rejects_a_missing_time),
        cmocka_unit_test(decode_rejects_a_document_without_nodes),
        cmocka_unit_test(decode_rejects_text_that_is_not_json),
        cmocka_unit_test(decode_rejects_duplicate_json_keys),
        cmocka_unit_test(name_ok_accepts_one_component_only),
        cmocka_unit_test(node_types_map_from_modes_and_to_letters),
        cmocka_unit_test(find_locates_nodes_in_a_sorted_tree),
        cmocka_unit_test(digest_line_of_a_file_lists_mode_size_sha_and_user_xattrs),
        cmocka_unit_test(digest_line_of_a_directory_has_no_size_or_hash),
        cmocka_unit_test(digest_line_of_a_symlink_hashes_its_target),
        cmocka_unit_test(digest_line_shows_special_bits_and_special_files),
        cmocka_unit_test(digest_line_appends_to_the_buffer),
    };
    return cmocka_run_group_tests_name("repo_tree", tests, NULL, NULL);
}
