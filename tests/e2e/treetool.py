#!/usr/bin/python3
"""Test helper: generate random trees, mutate them, compare two trees exactly.

  treetool.py gen DIR SEED [--files N] [--sparse-gib G] [--max-size BYTES]
  treetool.py mutate DIR SEED PERCENT      rewrite/add PERCENT % of files
  treetool.py compare A B [--no-owner]     exit 1 with a message on any difference
  treetool.py digest DIR                   print a digest of content + metadata
Standard library only.
"""
import hashlib
import os
import random
import stat
import sys

NAMES = ["a", "b c", "déjà vu", "日本語", "x" * 120, "-dash", "semi;colon", "tab\there",
         "quote'\"", "UPPER", ".hidden", "emoji 😀", "new\nline"]


def rand_bytes(rng, n, compressible):
    if compressible:
        words = [b"supabase ", b"storage ", b"{\"id\": 1} ", b"row ", b"\n"]
        out = bytearray()
        while len(out) < n:
            out += rng.choice(words)
        return bytes(out[:n])
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


def gen(root, seed, files=300, sparse_gib=0, max_size=256 * 1024):
    rng = random.Random(seed)
    os.makedirs(root, exist_ok=True)
    dirs = [root]
    # deep path
    deep = root
    for i in range(40):
        deep = os.path.join(deep, "d%02d" % i)
    os.makedirs(deep)
    dirs.append(deep)
    for i in range(max(3, files // 15)):
        parent = rng.choice(dirs)
        d = os.path.join(parent, rng.choice(NAMES) + "-%d" % i)
        os.makedirs(d, exist_ok=True)
        dirs.append(d)
    os.makedirs(os.path.join(root, "empty dir"), exist_ok=True)
    os.makedirs(os.path.join(root, "empty dir", "nested empty"), exist_ok=True)
    made = []
    for i in range(files):
        d = rng.choice(dirs)
        name = rng.choice(NAMES) + "-f%d" % i
        p = os.path.join(d, name)
        kind = rng.random()
        if kind < 0.1:
            size = 0
        elif kind < 0.6:
            size = rng.randint(1, 4096)
        else:
            size = rng.randint(4096, max_size)
        with open(p, "wb") as f:
            f.write(rand_bytes(rng, size, rng.random() < 0.5))
        os.chmod(p, rng.choice([0o644, 0o600, 0o755, 0o444, 0o640]))
        if rng.random() < 0.2:
            try:
                os.setxattr(p, "user.supabase.content-type", rng.choice([b"image/png", b"text/plain"]))
                os.setxattr(p, "user.supabase.cache-control", b"max-age=3600")
            except OSError:
                pass
        t = 1_600_000_000 + rng.randint(0, 10**8)
        os.utime(p, ns=(t * 10**9 + rng.randint(0, 10**9 - 1),) * 2)
        made.append(p)
    # symlinks: relative, absolute, dangling, to a dir
    for i in range(5):
        target = os.path.relpath(rng.choice(made), root)
        os.symlink(target, os.path.join(root, "link-%d" % i))
    os.symlink("/nonexistent/target", os.path.join(root, "dangling"))
    os.symlink("empty dir", os.path.join(root, "dirlink"))
    # hard links
    for i in range(3):
        src = rng.choice(made)
        dst = os.path.join(rng.choice(dirs), "hardlink-%d" % i)
        if not os.path.exists(dst):
            os.link(src, dst)
    # many tiny files
    tiny = os.path.join(root, "tiny")
    os.makedirs(tiny)
    for i in range(files):
        with open(os.path.join(tiny, "t%05d" % i), "wb") as f:
            f.write(b"%d\n" % i)
    if sparse_gib:
        p = os.path.join(root, "sparse.img")
        with open(p, "wb") as f:
            f.seek(sparse_gib * (1 << 30) - 1)
            f.write(b"\0")
        with open(p, "r+b") as f:
            f.seek(12345678)
            f.write(b"data in the middle of a hole")
    # directory modes and times last
    for d in sorted(dirs, key=len, reverse=True):
        if d != root and rng.random() < 0.2:
            os.chmod(d, 0o750)
        t = 1_600_000_000 + rng.randint(0, 10**8)
        os.utime(d, ns=(t * 10**9,) * 2, follow_symlinks=False)


def mutate(root, seed, percent):
    rng = random.Random(seed)
    files = []
    for dp, dn, fn in os.walk(root):
        for n in fn:
            p = os.path.join(dp, n)
            if os.path.isfile(p) and not os.path.islink(p) and os.lstat(p).st_nlink == 1:
                files.append(p)
    files.sort()
    k = max(1, len(files) * percent // 100)
    for p in rng.sample(files, k):
        if rng.random() < 0.5:
            with open(p, "ab") as f:
                f.write(rand_bytes(rng, rng.randint(1, 5000), False))
        else:
            with open(p + ".new", "wb") as f:
                f.write(rand_bytes(rng, rng.randint(0, 20000), False))
    return k


def entries(root):
    out = {}
    for dp, dn, fn in os.walk(root):
        for n in dn + fn:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root)] = p
    out["."] = root
    return out


def describe(p, no_owner):
    st = os.lstat(p)
    d = {"mode": stat.S_IMODE(st.st_mode), "type": stat.S_IFMT(st.st_mode)}
    if not no_owner:
        d["uid"] = st.st_uid
        d["gid"] = st.st_gid
    if not stat.S_ISDIR(st.st_mode):
        d["mtime_ns"] = st.st_mtime_ns
    else:
        d["mtime_ns"] = st.st_mtime_ns
    if stat.S_ISLNK(st.st_mode):
        d["target"] = os.readlink(p)
        d.pop("mode")
    elif stat.S_ISREG(st.st_mode):
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for b in iter(lambda: f.read(1 << 20), b""):
                h.update(b)
        d["sha256"] = h.hexdigest()
        d["size"] = st.st_size
        d["nlink"] = st.st_nlink
    if not stat.S_ISLNK(st.st_mode):
        try:
            d["xattrs"] = sorted((k, os.getxattr(p, k)) for k in os.listxattr(p) if k.startswith("user."))
        except OSError:
            d["xattrs"] = []
    return d


def hardlink_groups(root):
    groups = {}
    for rel, p in entries(root).items():
        st = os.lstat(p)
        if stat.S_ISREG(st.st_mode) and st.st_nlink > 1:
            groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return sorted(sorted(g) for g in groups.values())


def compare(a, b, no_owner=False):
    ea, eb = entries(a), entries(b)
    problems = []
    for rel in sorted(set(ea) | set(eb)):
        if rel not in eb:
            problems.append("missing in restore: %r" % rel)
            continue
        if rel not in ea:
            problems.append("extra in restore: %r" % rel)
            continue
        da, db = describe(ea[rel], no_owner), describe(eb[rel], no_owner)
        if da != db:
            diff = {k: (da.get(k), db.get(k)) for k in set(da) | set(db) if da.get(k) != db.get(k)}
            problems.append("%r differs: %r" % (rel, diff))
    if hardlink_groups(a) != hardlink_groups(b):
        problems.append("hard link groups differ: %r vs %r" % (hardlink_groups(a), hardlink_groups(b)))
    if problems:
        for p in problems[:30]:
            print(p, file=sys.stderr)
        print("%d differences" % len(problems), file=sys.stderr)
        return 1
    return 0


def main():
    cmd = sys.argv[1]
    if cmd == "gen":
        args = sys.argv[2:]
        kw = {}
        pos = []
        i = 0
        while i < len(args):
            if args[i] == "--files":
                kw["files"] = int(args[i + 1]); i += 2
            elif args[i] == "--sparse-gib":
                kw["sparse_gib"] = int(args[i + 1]); i += 2
            elif args[i] == "--max-size":
                kw["max_size"] = int(args[i + 1]); i += 2
            else:
                pos.append(args[i]); i += 1
        gen(pos[0], int(pos[1]), **kw)
    elif cmd == "mutate":
        print(mutate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4])))
    elif cmd == "compare":
        sys.exit(compare(sys.argv[2], sys.argv[3], "--no-owner" in sys.argv))
    elif cmd == "digest":
        h = hashlib.sha256()
        for rel, p in sorted(entries(sys.argv[2]).items()):
            h.update(repr((rel, describe(p, False))).encode())
        print(h.hexdigest())
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
