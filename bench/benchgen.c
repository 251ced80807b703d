/*
 * benchgen: deterministic data generator for the SupaManager Backup benchmark.
 *
 * Everything it writes is a pure function of its arguments (fixed PRNG
 * seeds, no clock, no /dev/urandom), so two runs on any machine produce
 * byte-identical data.  Built on the fly by bench/gen-dataset.sh; it is a
 * benchmark helper, not part of the product.
 *
 *   benchgen files ROOT SCALE              storage tree, ~SCALE GiB, 60 % incompressible
 *   benchgen mutate ROOT SEED PERMILLE     rewrite/add PERMILLE/10 % of the files (half each)
 *   benchgen rows TABLE FIRST COUNT NUSERS COPY-text rows FIRST..FIRST+COUNT-1 of TABLE
 *   benchgen manifest ROOT content|meta    one line per entry, sorted (for restore checks)
 *   benchgen rand BYTES SEED               pseudo-random bytes to stdout
 *
 * TABLE is one of users, orders, posts, events, attachments.  Row content
 * depends only on (table, row number); users are numbered 1..NUSERS and
 * referenced through user_uuid(n), so rows appended later stay consistent.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define XATTR_NAME "user.supabase.content-type"

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("benchgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* ---------------------------------------------------------------- PRNG */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

typedef struct {
	uint64_t s[4];
} rng_t;

static void rng_seed(rng_t *r, uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&x);
}

static void rng_seed2(rng_t *r, uint64_t a, uint64_t b)
{
	uint64_t x = a * 0xd1b54a32d192ed03ULL ^ b;
	rng_seed(r, splitmix64(&x) ^ b);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t rng_next(rng_t *r) /* xoshiro256** */
{
	uint64_t *s = r->s;
	uint64_t res = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return res;
}

static inline double rng_unit(rng_t *r) { return (rng_next(r) >> 11) * 0x1.0p-53; }
static inline uint64_t rng_below(rng_t *r, uint64_t n) { return n ? rng_next(r) % n : 0; }
static inline uint64_t rng_range(rng_t *r, uint64_t lo, uint64_t hi) { return lo + rng_below(r, hi - lo + 1); }

/* log-uniform integer in [lo, hi] */
static uint64_t rng_logu(rng_t *r, double lo, double hi)
{
	return (uint64_t)(lo * exp(rng_unit(r) * log(hi / lo)));
}

static void rng_fill(rng_t *r, unsigned char *p, size_t n)
{
	while (n >= 8) {
		uint64_t v = rng_next(r);
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		uint64_t v = rng_next(r);
		memcpy(p, &v, n);
	}
}

/* ---------------------------------------------------------------- output buffer */

typedef struct {
	int fd;
	uint64_t left; /* bytes still to emit (UINT64_MAX: unbounded) */
	size_t len;
	char buf[1 << 20];
} sink_t;

static void sink_flush(sink_t *s)
{
	size_t off = 0;
	while (off < s->len) {
		ssize_t w = write(s->fd, s->buf + off, s->len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			die("write: %s", strerror(errno));
		}
		off += (size_t)w;
	}
	s->len = 0;
}

static void put(sink_t *s, const char *p, size_t n)
{
	if (n > s->left)
		n = s->left;
	s->left -= n;
	while (n) {
		size_t room = sizeof s->buf - s->len, k = n < room ? n : room;
		memcpy(s->buf + s->len, p, k);
		s->len += k;
		p += k;
		n -= k;
		if (s->len == sizeof s->buf)
			sink_flush(s);
	}
}

static void puts_(sink_t *s, const char *p) { put(s, p, strlen(p)); }

static void putf(sink_t *s, const char *fmt, ...)
{
	char tmp[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
	va_end(ap);
	if (n < 0)
		die("vsnprintf");
	put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_hex(sink_t *s, const unsigned char *p, size_t n)
{
	static const char hx[] = "0123456789abcdef";
	char tmp[2048];
	while (n) {
		size_t k = n < sizeof tmp / 2 ? n : sizeof tmp / 2;
		for (size_t i = 0; i < k; i++) {
			tmp[2 * i] = hx[p[i] >> 4];
			tmp[2 * i + 1] = hx[p[i] & 15];
		}
		put(s, tmp, 2 * k);
		p += k;
		n -= k;
	}
}

static void put_randhex(sink_t *s, rng_t *r, int nhex)
{
	static const char hx[] = "0123456789abcdef";
	char tmp[64];
	for (int i = 0; i < nhex; i++)
		tmp[i] = hx[rng_next(r) >> 60];
	put(s, tmp, nhex);
}

/* ---------------------------------------------------------------- vocabulary */

#define NWORDS 4096
static char *words[NWORDS];
static size_t wordlen[NWORDS];

static const char *common[] = {
	"the", "of", "and", "to", "a", "in", "is", "it", "that", "for", "on", "with", "as", "was",
	"be", "by", "this", "are", "or", "from", "at", "an", "we", "you", "not", "have", "can",
	"will", "all", "data", "user", "backup", "project", "table", "storage", "database", "row",
	"file", "query", "server", "client", "update", "new", "time", "when", "which", "their",
	"there", "been", "more", "one", "each", "other", "about", "into", "than", "some", "these"};
static const char *syll[] = {"ka", "lo", "mi", "ren", "sa", "to", "vel", "dor", "an", "is",
	"ul", "pe", "tra", "con", "ex", "ma", "ri", "sto", "ne", "qui", "la", "ber", "ton", "ing",
	"al", "or", "en", "ver", "di", "po", "ta", "gra", "li", "mo", "shi", "ra", "ti", "ce", "lu",
	"nor", "zen", "fa", "bi", "ple", "cor", "mis", "ga", "de", "sel", "um"};

static void vocab_init(void)
{
	size_t nc = sizeof common / sizeof *common, ns = sizeof syll / sizeof *syll;
	rng_t r;
	rng_seed(&r, 0x766f636162ULL);
	for (size_t i = 0; i < NWORDS; i++) {
		char w[64] = "";
		if (i < nc) {
			strcpy(w, common[i]);
		} else {
			int k = 1 + (int)rng_below(&r, 3) + (rng_below(&r, 4) == 0);
			for (int j = 0; j < k; j++)
				strcat(w, syll[rng_below(&r, ns)]);
		}
		words[i] = strdup(w);
		wordlen[i] = strlen(w);
	}
}

/* Zipf-like pick: low indexes (common words) are much more frequent */
static inline size_t pick_word(rng_t *r)
{
	double u = rng_unit(r);
	return (size_t)(NWORDS * u * u * u);
}

static void put_word(sink_t *s, rng_t *r) { size_t i = pick_word(r); put(s, words[i], wordlen[i]); }

static void put_words(sink_t *s, rng_t *r, int n, char sep)
{
	for (int i = 0; i < n; i++) {
		if (i)
			put(s, &sep, 1);
		put_word(s, r);
	}
}

static void put_sentence(sink_t *s, rng_t *r)
{
	int n = 6 + (int)rng_below(r, 15);
	size_t i = pick_word(r);
	char cap[64];
	memcpy(cap, words[i], wordlen[i] + 1);
	cap[0] = (char)(cap[0] - 32 * (cap[0] >= 'a' && cap[0] <= 'z'));
	put(s, cap, wordlen[i]);
	for (int k = 1; k < n; k++) {
		if (k % 7 == 3 && rng_below(r, 3) == 0)
			puts_(s, ", ");
		else
			puts_(s, " ");
		put_word(s, r);
	}
	puts_(s, rng_below(r, 8) ? ". " : "? ");
}

static void put_paragraph(sink_t *s, rng_t *r)
{
	int n = 3 + (int)rng_below(r, 5);
	for (int i = 0; i < n; i++)
		put_sentence(s, r);
}

/* ---------------------------------------------------------------- shared field helpers */

#define T0 1672531200LL /* 2023-01-01 00:00:00 UTC */

static void put_ts(sink_t *s, int64_t t, unsigned usec)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	putf(s, "%04d-%02d-%02d %02d:%02d:%02d.%06u+00", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

static void put_iso(sink_t *s, int64_t t, unsigned msec)
{
	time_t tt = (time_t)t;
	struct tm tm;
	gmtime_r(&tt, &tm);
	putf(s, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
		tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
}

static void fmt_uuid(char out[37], uint64_t a, uint64_t b)
{
	a = (a & ~0xf000ULL) | 0x4000ULL;                           /* version 4 */
	b = (b & 0x3fffffffffffffffULL) | 0x8000000000000000ULL; /* variant */
	snprintf(out, 37, "%08" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%04" PRIx64 "-%012" PRIx64,
		a >> 32, (a >> 16) & 0xffff, a & 0xffff, b >> 48, (uint64_t)(b & 0xffffffffffffULL));
}

static void user_uuid(char out[37], uint64_t n)
{
	uint64_t x = n ^ 0x7573657273ULL;
	uint64_t a = splitmix64(&x), b = splitmix64(&x);
	fmt_uuid(out, a, b);
}

static void rand_uuid(char out[37], rng_t *r)
{
	uint64_t a = rng_next(r), b = rng_next(r);
	fmt_uuid(out, a, b);
}

static void put_email(sink_t *s, rng_t *r, uint64_t n)
{
	static const char *dom[] = {"gmail.com", "example.com", "outlook.com", "proton.me", "acme.io", "yahoo.com"};
	put_word(s, r);
	puts_(s, rng_below(r, 2) ? "." : "_");
	put_word(s, r);
	putf(s, "%" PRIu64 "@%s", n, dom[rng_below(r, 6)]);
}

static void put_name(sink_t *s, rng_t *r)
{
	for (int k = 0; k < 2; k++) {
		size_t i = 60 + rng_below(r, NWORDS - 60);
		char w[64];
		memcpy(w, words[i], wordlen[i] + 1);
		w[0] = (char)(w[0] - 32);
		if (k)
			puts_(s, " ");
		put(s, w, wordlen[i]);
	}
}

/* ---------------------------------------------------------------- file content generators */

enum kind { K_BIN, K_TXT, K_MD, K_HTML, K_SVG, K_JSON, K_NDJSON, K_CSV, K_LOG };

static void gen_content(sink_t *s, enum kind k, rng_t *r, uint64_t fileno)
{
	uint64_t rec = 0;
	int64_t t = T0 + (int64_t)(fileno * 611 % 31536000);
	char u[37];
	switch (k) {
	case K_BIN: {
		unsigned char b[65536];
		while (s->left) {
			size_t n = s->left < sizeof b ? s->left : sizeof b;
			rng_fill(r, b, n);
			put(s, (char *)b, n);
		}
		break;
	}
	case K_TXT:
	case K_MD:
		if (k == K_MD) {
			puts_(s, "# ");
			put_words(s, r, 5, ' ');
			puts_(s, "\n\n");
		}
		while (s->left) {
			if (k == K_MD && rng_below(r, 6) == 0) {
				puts_(s, "## ");
				put_words(s, r, 4, ' ');
				puts_(s, "\n\n");
			}
			put_paragraph(s, r);
			puts_(s, "\n\n");
		}
		break;
	case K_HTML:
		puts_(s, "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>");
		put_words(s, r, 4, ' ');
		puts_(s, "</title></head>\n<body>\n");
		while (s->left) {
			if (rng_below(r, 5) == 0) {
				puts_(s, "<h2>");
				put_words(s, r, 3, ' ');
				puts_(s, "</h2>\n");
			}
			puts_(s, "<p class=\"body\">");
			put_paragraph(s, r);
			puts_(s, "</p>\n");
		}
		break;
	case K_SVG:
		puts_(s, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 1024 1024\">\n");
		while (s->left) {
			putf(s, "<path fill=\"#%06x\" d=\"M%u %u", (unsigned)rng_below(r, 0x1000000),
				(unsigned)rng_below(r, 1024), (unsigned)rng_below(r, 1024));
			int n = 3 + (int)rng_below(r, 8);
			for (int i = 0; i < n; i++)
				putf(s, " L%u.%u %u.%u", (unsigned)rng_below(r, 1024), (unsigned)rng_below(r, 10),
					(unsigned)rng_below(r, 1024), (unsigned)rng_below(r, 10));
			puts_(s, " Z\"/>\n");
		}
		break;
	case K_JSON:
	case K_NDJSON:
		if (k == K_JSON)
			puts_(s, "[\n");
		while (s->left) {
			rand_uuid(u, r);
			if (k == K_JSON)
				puts_(s, rec ? ",\n  " : "  ");
			putf(s, "{\"id\": %" PRIu64 ", \"uuid\": \"%s\", \"email\": \"", fileno * 100000 + rec, u);
			put_email(s, r, rec);
			puts_(s, "\", \"name\": \"");
			put_name(s, r);
			puts_(s, "\", \"created_at\": \"");
			put_iso(s, t + (int64_t)rec * 7, (unsigned)rng_below(r, 1000));
			putf(s, "\", \"amount\": %u.%02u, \"active\": %s, \"tags\": [\"", (unsigned)rng_below(r, 5000),
				(unsigned)rng_below(r, 100), rng_below(r, 4) ? "true" : "false");
			put_word(s, r);
			puts_(s, "\", \"");
			put_word(s, r);
			puts_(s, "\"], \"meta\": {\"source\": \"");
			put_word(s, r);
			putf(s, "\", \"version\": %u}}", (unsigned)rng_below(r, 20));
			if (k == K_NDJSON)
				puts_(s, "\n");
			rec++;
		}
		break;
	case K_CSV:
		puts_(s, "id,user_id,email,name,amount,currency,status,created_at\n");
		while (s->left) {
			static const char *st[] = {"paid", "pending", "shipped", "refunded", "cancelled"};
			static const char *cur[] = {"USD", "EUR", "GBP", "JPY"};
			rand_uuid(u, r);
			putf(s, "%" PRIu64 ",%s,", fileno * 1000000 + rec, u);
			put_email(s, r, rec);
			puts_(s, ",\"");
			put_name(s, r);
			putf(s, "\",%u.%02u,%s,%s,", (unsigned)rng_below(r, 100000), (unsigned)rng_below(r, 100),
				cur[rng_below(r, 4)], st[rng_below(r, 5)]);
			put_iso(s, t + (int64_t)rec * 13, (unsigned)rng_below(r, 1000));
			puts_(s, "\n");
			rec++;
		}
		break;
	case K_LOG:
		while (s->left) {
			static const char *lvl[] = {"INFO", "INFO", "INFO", "DEBUG", "WARN", "ERROR"};
			static const char *svc[] = {"rest", "auth", "storage", "realtime", "functions"};
			static const char *meth[] = {"GET", "GET", "POST", "PATCH", "DELETE"};
			static const unsigned code[] = {200, 200, 200, 201, 204, 304, 400, 401, 404, 500};
			rand_uuid(u, r);
			put_iso(s, t + (int64_t)(rec / 4), (unsigned)rng_below(r, 1000));
			putf(s, " %s [%s] request_id=", lvl[rng_below(r, 6)], svc[rng_below(r, 5)]);
			put_randhex(s, r, 16);
			putf(s, " method=%s path=/", meth[rng_below(r, 5)]);
			put_word(s, r);
			puts_(s, "/v1/");
			put_word(s, r);
			putf(s, "?select=* status=%u duration_ms=%u user=%s\n", code[rng_below(r, 10)],
				(unsigned)rng_logu(r, 1, 3000), u);
			rec++;
		}
		break;
	}
}

static const struct {
	const char *ext, *mime, *bucket;
	enum kind kind;
} kinds[] = {
	/* incompressible */
	{"jpg", "image/jpeg", "avatars", K_BIN},       /* 0 */
	{"png", "image/png", "avatars", K_BIN},        /* 1 */
	{"webp", "image/webp", "images", K_BIN},       /* 2 */
	{"pdf", "application/pdf", "documents", K_BIN},/* 3 */
	{"zip", "application/zip", "documents", K_BIN},/* 4 */
	{"mp4", "video/mp4", "videos", K_BIN},         /* 5 */
	{"mov", "video/quicktime", "videos", K_BIN},   /* 6 */
	/* compressible */
	{"txt", "text/plain", "public", K_TXT},        /* 7 */
	{"md", "text/markdown", "public", K_MD},       /* 8 */
	{"html", "text/html", "public", K_HTML},       /* 9 */
	{"svg", "image/svg+xml", "images", K_SVG},     /* 10 */
	{"json", "application/json", "exports", K_JSON},       /* 11 */
	{"ndjson", "application/x-ndjson", "exports", K_NDJSON},/* 12 */
	{"csv", "text/csv", "exports", K_CSV},         /* 13 */
	{"log", "text/plain", "logs", K_LOG},          /* 14 */
};

/* kind index for (incompressible?, size class) */
static int pick_kind(rng_t *r, int incompressible, int cls)
{
	static const int inc[3][3] = {{0, 1, 2}, {0, 3, 4}, {5, 6, 4}};
	static const int cmp[3][3] = {{11, 7, 10}, {13, 9, 8}, {14, 13, 12}};
	return incompressible ? inc[cls][rng_below(r, 3)] : cmp[cls][rng_below(r, 3)];
}

static int kind_of_ext(const char *path)
{
	const char *dot = strrchr(path, '.');
	if (dot)
		for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
			if (!strcmp(dot + 1, kinds[i].ext))
				return (int)i;
	return 0;
}

static void mkdirs(const char *path)
{
	char tmp[4096];
	snprintf(tmp, sizeof tmp, "%s", path);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			if (mkdir(tmp, 0755) && errno != EEXIST)
				die("mkdir %s: %s", tmp, strerror(errno));
			*p = '/';
		}
	if (mkdir(tmp, 0755) && errno != EEXIST)
		die("mkdir %s: %s", tmp, strerror(errno));
}

static sink_t g_sink;
static int xattr_warned;

/* (Re)write PATH with SIZE bytes of kind K from generator seeded (seed, fileno). */
static void write_file(const char *path, int k, uint64_t size, uint64_t seed, uint64_t fileno, int append)
{
	int fd = open(path, O_WRONLY | O_CREAT | (append ? O_APPEND : O_TRUNC), 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	rng_t r;
	rng_seed2(&r, seed, fileno);
	g_sink.fd = fd;
	g_sink.left = size;
	g_sink.len = 0;
	gen_content(&g_sink, kinds[k].kind, &r, fileno);
	sink_flush(&g_sink);
	if (close(fd))
		die("close %s: %s", path, strerror(errno));
}

static void set_ctype(const char *path, int k)
{
	if (setxattr(path, XATTR_NAME, kinds[k].mime, strlen(kinds[k].mime), 0) && !xattr_warned) {
		fprintf(stderr, "benchgen: warning: setxattr %s: %s (continuing without xattrs)\n", path, strerror(errno));
		xattr_warned = 1;
	}
}

/* size class and size, log-uniform within the class */
static uint64_t pick_size(rng_t *r, int *cls)
{
	double u = rng_unit(r);
	if (u < 0.85) {
		*cls = 0;
		return rng_logu(r, 1024, 131072);
	}
	if (u < 0.98) {
		*cls = 1;
		return rng_logu(r, 131072, 2097152);
	}
	*cls = 2;
	return rng_logu(r, 2097152, 41943040);
}

static void cmd_files(const char *root, double scale)
{
	const uint64_t target = (uint64_t)(scale * 1073741824.0);
	const uint64_t cap = target / 8 > 65536 ? target / 8 : 65536;
	const uint64_t est_files = target / 370000 + 1;
	const uint64_t nowners = est_files / 10 + 4;
	static const char *subs[] = {"", "", "uploads/", "uploads/2024/", "private/", "thumbs/"};
	static const char *services[] = {"rest", "auth", "storage", "realtime", "functions", "kong", "meta"};
	rng_t r;
	uint64_t total = 0, inc = 0, n = 0;
	rng_seed(&r, 0x66696c6573ULL);
	mkdirs(root);
	while (total < target) {
		int cls, k;
		uint64_t size = pick_size(&r, &cls);
		if (size > cap)
			size = cap;
		if (size > target - total)
			size = target - total < 1024 ? 1024 : target - total;
		/* keep the incompressible share as close to 60 % of the bytes as possible */
		double want = 0.6 * (double)(total + size);
		int is_inc = fabs((double)(inc + size) - want) < fabs((double)inc - want);
		k = pick_kind(&r, is_inc, cls);
		char dir[1024], path[2048], u[37];
		uint64_t owner = rng_below(&r, nowners);
		user_uuid(u, owner + 1);
		if (kinds[k].kind == K_LOG)
			snprintf(dir, sizeof dir, "%s/logs/%s/%04u/%02u", root, services[rng_below(&r, 7)],
				2023 + (unsigned)rng_below(&r, 2), 1 + (unsigned)rng_below(&r, 12));
		else
			snprintf(dir, sizeof dir, "%s/%s/%s/%s", root, kinds[k].bucket, u, subs[rng_below(&r, 6)]);
		mkdirs(dir);
		size_t wi = 60 + rng_below(&r, NWORDS - 60), wj = 60 + rng_below(&r, NWORDS - 60);
		snprintf(path, sizeof path, "%s/%s-%s-%05" PRIu64 ".%s", dir, words[wi], words[wj], n, kinds[k].ext);
		write_file(path, k, size, 0x636f6e74656e74ULL, n, 0);
		if (rng_below(&r, 10) < 3)
			set_ctype(path, k);
		/* fixed mtimes: old uploads, spread over 2023 */
		struct timespec ts[2] = {{T0 + (time_t)(n * 9973 % 31536000), 0}, {T0 + (time_t)(n * 9973 % 31536000), 0}};
		utimensat(AT_FDCWD, path, ts, 0);
		total += size;
		if (is_inc)
			inc += size;
		n++;
	}
	fprintf(stderr, "benchgen: %" PRIu64 " files, %" PRIu64 " bytes, %.1f %% incompressible\n", n, total,
		total ? 100.0 * (double)inc / (double)total : 0.0);
}

/* ---------------------------------------------------------------- tree walking */

static char **g_paths;
static size_t g_npaths, g_cap;
static int g_dirs_too;

static int collect(const char *p, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_F || (g_dirs_too && type == FTW_D)) {
		if (g_npaths == g_cap) {
			g_cap = g_cap ? g_cap * 2 : 4096;
			g_paths = realloc(g_paths, g_cap * sizeof *g_paths);
			if (!g_paths)
				die("out of memory");
		}
		g_paths[g_npaths++] = strdup(p);
	}
	return 0;
}

static int cmpstr(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void walk(const char *root, int dirs_too)
{
	g_npaths = 0;
	g_dirs_too = dirs_too;
	if (nftw(root, collect, 64, FTW_PHYS))
		die("walk %s: %s", root, strerror(errno));
	qsort(g_paths, g_npaths, sizeof *g_paths, cmpstr);
}

/* Rewrite ceil(n/2) existing files and add floor(n/2) new ones, n = PERMILLE/1000 of the files. */
static void cmd_mutate(const char *root, uint64_t seed, uint64_t permille)
{
	walk(root, 0);
	if (!g_npaths)
		die("no files under %s", root);
	uint64_t n = (g_npaths * permille + 999) / 1000;
	uint64_t nrew = (n + 1) / 2, nnew = n / 2, bytes = 0;
	rng_t r;
	rng_seed2(&r, 0x6d75746174650000ULL, seed);
	/* partial Fisher-Yates over the sorted list */
	size_t *idx = malloc(g_npaths * sizeof *idx);
	for (size_t i = 0; i < g_npaths; i++)
		idx[i] = i;
	for (uint64_t i = 0; i < nrew + nnew && i < g_npaths; i++) {
		size_t j = i + rng_below(&r, g_npaths - i), t = idx[i];
		idx[i] = idx[j];
		idx[j] = t;
	}
	for (uint64_t i = 0; i < nrew; i++) {
		const char *p = g_paths[idx[i]];
		struct stat st;
		if (stat(p, &st))
			die("stat %s: %s", p, strerror(errno));
		int k = kind_of_ext(p);
		uint64_t size;
		if (kinds[k].kind == K_LOG) { /* logs grow */
			size = (uint64_t)st.st_size / 10 + 1024;
			write_file(p, k, size, seed, 1000000 + i, 1);
		} else { /* replaced by a new version of about the same size */
			size = (uint64_t)((double)st.st_size * (0.8 + 0.4 * rng_unit(&r))) + 1;
			write_file(p, k, size, seed, 1000000 + i, 0);
		}
		bytes += size;
	}
	for (uint64_t i = 0; i < nnew; i++) {
		/* new file next to an existing one, same kind, fresh content */
		const char *near = g_paths[idx[nrew + i]];
		char path[4096];
		int k = kind_of_ext(near), cls;
		const char *slash = strrchr(near, '/');
		uint64_t size = pick_size(&r, &cls);
		struct stat st;
		if (stat(near, &st) == 0 && size > (uint64_t)st.st_size * 4 + 65536)
			size = (uint64_t)st.st_size * 4 + 65536;
		snprintf(path, sizeof path, "%.*s/new-%" PRIu64 "-%05" PRIu64 ".%s", (int)(slash - near), near, seed, i,
			kinds[k].ext);
		write_file(path, k, size, seed, 2000000 + i, 0);
		if (rng_below(&r, 10) < 3)
			set_ctype(path, k);
		bytes += size;
	}
	fprintf(stderr, "benchgen: mutate: %zu files, rewrote %" PRIu64 ", added %" PRIu64 ", %" PRIu64 " bytes written\n",
		g_npaths, nrew, nnew, bytes);
}

/* ---------------------------------------------------------------- manifest */

static uint64_t hash_file(const char *p)
{
	/* 4-lane FNV-1a-style 64-bit mix: not cryptographic, just a content check */
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		die("open %s: %s", p, strerror(errno));
	static unsigned char b[1 << 20];
	uint64_t h[4] = {0xcbf29ce484222325ULL, 1, 2, 3}, len = 0;
	ssize_t n;
	while ((n = read(fd, b, sizeof b)) > 0) {
		size_t i = 0;
		for (; i + 32 <= (size_t)n; i += 32)
			for (int l = 0; l < 4; l++) {
				uint64_t v;
				memcpy(&v, b + i + 8 * l, 8);
				h[l] = (h[l] ^ v) * 0x100000001b3ULL;
				h[l] ^= h[l] >> 29;
			}
		for (; i < (size_t)n; i++)
			h[0] = (h[0] ^ b[i]) * 0x100000001b3ULL;
		len += (uint64_t)n;
	}
	if (n < 0)
		die("read %s: %s", p, strerror(errno));
	close(fd);
	uint64_t x = len;
	for (int l = 0; l < 4; l++) {
		x ^= h[l];
		x = splitmix64(&x);
	}
	return x;
}

static void cmd_manifest(const char *root, const char *what)
{
	int meta = !strcmp(what, "meta");
	if (!meta && strcmp(what, "content"))
		die("manifest: content or meta");
	walk(root, meta);
	size_t rl = strlen(root);
	for (size_t i = 0; i < g_npaths; i++) {
		const char *p = g_paths[i], *rel = p[rl] ? p + rl + 1 : ".";
		struct stat st;
		if (lstat(p, &st))
			die("lstat %s: %s", p, strerror(errno));
		if (!meta) {
			printf("%s %lld %016" PRIx64 "\n", rel, (long long)st.st_size, hash_file(p));
		} else {
			char xv[256] = "";
			ssize_t xl = lgetxattr(p, XATTR_NAME, xv, sizeof xv - 1);
			xv[xl > 0 ? xl : 0] = 0;
			/* directory mtimes are not compared: tools differ on whether they restore them */
			printf("%s %o %lld %s\n", rel, (unsigned)st.st_mode, S_ISDIR(st.st_mode) ? 0LL : (long long)st.st_mtime,
				xv[0] ? xv : "-");
		}
	}
}

/* ---------------------------------------------------------------- database rows (COPY text format) */

static void row_users(sink_t *s, uint64_t n)
{
	rng_t r;
	char u[37];
	rng_seed2(&r, 0x7573657273ULL, n);
	int64_t t = T0 + (int64_t)n * 61;
	user_uuid(u, n);
	putf(s, "%s\t", u);
	put_email(s, &r, n);
	puts_(s, "\t$2a$10$");
	static const char b64[] = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
	char pw[53];
	for (int i = 0; i < 53; i++)
		pw[i] = b64[rng_next(&r) >> 58];
	put(s, pw, 53);
	puts_(s, "\t");
	if (rng_below(&r, 10))
		put_ts(s, t + (int64_t)rng_below(&r, 3600), (unsigned)rng_below(&r, 1000000));
	else
		puts_(s, "\\N");
	puts_(s, "\t");
	if (rng_below(&r, 10) < 4)
		putf(s, "+1555%07u", (unsigned)rng_below(&r, 10000000));
	else
		puts_(s, "\\N");
	puts_(s, "\t");
	put_ts(s, t, (unsigned)rng_below(&r, 1000000));
	puts_(s, "\t");
	put_ts(s, t + (int64_t)rng_below(&r, 86400 * 30), (unsigned)rng_below(&r, 1000000));
	puts_(s, "\t");
	put_ts(s, t + (int64_t)rng_below(&r, 86400 * 300), (unsigned)rng_below(&r, 1000000));
	static const char *prov[] = {"email", "email", "google", "github", "apple"};
	const char *pv = prov[rng_below(&r, 5)];
	putf(s, "\t{\"provider\": \"%s\", \"providers\": [\"%s\"]}\t{\"full_name\": \"", pv, pv);
	put_name(s, &r);
	puts_(s, "\", \"avatar_url\": \"https://cdn.example.com/avatars/");
	put_randhex(s, &r, 32);
	putf(s, ".png\", \"locale\": \"%s\"}\tauthenticated\n", rng_below(&r, 3) ? "en" : "de");
}

static void row_orders(sink_t *s, uint64_t n, uint64_t nusers)
{
	static const char *st[] = {"paid", "paid", "paid", "pending", "shipped", "shipped", "refunded", "cancelled"};
	static const char *cur[] = {"USD", "USD", "EUR", "GBP", "JPY"};
	rng_t r;
	char u[37];
	rng_seed2(&r, 0x6f7264657273ULL, n);
	user_uuid(u, 1 + rng_below(&r, nusers));
	unsigned amount = (unsigned)rng_logu(&r, 100, 5000000);
	putf(s, "%" PRIu64 "\t%s\t%s\t%s\t%u.%02u\t%u.%02u\t%u\t", n, u, st[rng_below(&r, 8)], cur[rng_below(&r, 5)],
		amount / 100, amount % 100, amount / 1000, (amount / 10) % 100, 1 + (unsigned)rng_logu(&r, 1, 40));
	put_ts(s, T0 + (int64_t)n * 15 + (int64_t)rng_below(&r, 15), (unsigned)rng_below(&r, 1000000));
	puts_(s, "\t");
	if (rng_below(&r, 10) < 3)
		put_words(s, &r, 2 + (int)rng_below(&r, 6), ' ');
	else
		puts_(s, "\\N");
	puts_(s, "\n");
}

static void row_posts(sink_t *s, uint64_t n, uint64_t nusers)
{
	rng_t r;
	char u[37];
	rng_seed2(&r, 0x706f737473ULL, n);
	user_uuid(u, 1 + rng_below(&r, nusers));
	putf(s, "%" PRIu64 "\t%s\t", n, u);
	/* title, then a slug made of the same words */
	size_t tw[12];
	int nt = 4 + (int)rng_below(&r, 6);
	for (int i = 0; i < nt; i++)
		tw[i] = pick_word(&r);
	for (int i = 0; i < nt; i++) {
		if (i)
			puts_(s, " ");
		put(s, words[tw[i]], wordlen[tw[i]]);
	}
	puts_(s, "\t");
	for (int i = 0; i < nt; i++) {
		put(s, words[tw[i]], wordlen[tw[i]]);
		puts_(s, "-");
	}
	putf(s, "%" PRIu64 "\t", n);
	uint64_t target = rng_logu(&r, 200, 6000);
	/* body: paragraphs separated by an escaped newline pair (COPY text: \n) */
	uint64_t written = 0;
	while (written < target) {
		uint64_t l0 = s->left;
		put_paragraph(s, &r);
		written += l0 - s->left;
		if (written < target) {
			puts_(s, "\\n\\n");
			written += 4;
		}
	}
	putf(s, "\t%s\t", rng_below(&r, 10) < 8 ? "t" : "f");
	int64_t t = T0 + (int64_t)n * 200;
	put_ts(s, t, (unsigned)rng_below(&r, 1000000));
	puts_(s, "\t");
	put_ts(s, t + (int64_t)rng_below(&r, 86400 * 10), (unsigned)rng_below(&r, 1000000));
	puts_(s, "\n");
}

static void row_events(sink_t *s, uint64_t n, uint64_t nusers)
{
	static const char *types[] = {"page_view", "page_view", "page_view", "click", "login", "api_call", "api_call",
		"purchase", "signup", "logout"};
	static const char *ua[] = {"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
		"Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
		"supabase-js/2.43.1", "okhttp/4.12.0"};
	rng_t r;
	char u[37];
	rng_seed2(&r, 0x6576656e7473ULL, n);
	user_uuid(u, 1 + rng_below(&r, nusers));
	const char *ty = types[rng_below(&r, 10)];
	putf(s, "%" PRIu64 "\t%s\t%s\t{\"path\": \"/app/", n, u, ty);
	put_word(s, &r);
	puts_(s, "/");
	put_word(s, &r);
	putf(s, "\", \"ip\": \"10.%u.%u.%u\", \"ua\": \"%s\", \"session\": \"", (unsigned)rng_below(&r, 256),
		(unsigned)rng_below(&r, 256), (unsigned)rng_below(&r, 256), ua[rng_below(&r, 5)]);
	put_randhex(s, &r, 16);
	putf(s, "\", \"props\": {\"ms\": %u, \"ok\": %s, \"ref\": \"", (unsigned)rng_logu(&r, 1, 5000),
		rng_below(&r, 20) ? "true" : "false");
	put_word(s, &r);
	putf(s, "\", \"n\": %u}}\t", (unsigned)rng_below(&r, 1000));
	put_ts(s, T0 + (int64_t)n * 40 + (int64_t)rng_below(&r, 40), (unsigned)rng_below(&r, 1000000));
	puts_(s, "\n");
}

static void row_attachments(sink_t *s, uint64_t n, uint64_t nusers)
{
	static const char *mime[] = {"image/jpeg", "image/png", "application/pdf", "application/zip"};
	static const char *ext[] = {"jpg", "png", "pdf", "zip"};
	static unsigned char b[65536];
	rng_t r;
	char u[37];
	rng_seed2(&r, 0x6174746163680000ULL, n);
	user_uuid(u, 1 + rng_below(&r, nusers));
	unsigned m = (unsigned)rng_below(&r, 4);
	size_t len = (size_t)rng_logu(&r, 1024, 32768);
	putf(s, "%" PRIu64 "\t%s\t", n, u);
	put_word(s, &r);
	putf(s, "-%" PRIu64 ".%s\t%s\t%zu\t\\\\x", n, ext[m], mime[m], len);
	rng_fill(&r, b, len);
	put_hex(s, b, len);
	puts_(s, "\t");
	put_ts(s, T0 + (int64_t)n * 2000, (unsigned)rng_below(&r, 1000000));
	puts_(s, "\n");
}

static void cmd_rows(const char *table, uint64_t first, uint64_t count, uint64_t nusers)
{
	sink_t *s = &g_sink;
	s->fd = 1;
	s->left = UINT64_MAX;
	s->len = 0;
	if (!nusers)
		nusers = 1;
	for (uint64_t n = first; n < first + count; n++) {
		if (!strcmp(table, "users"))
			row_users(s, n);
		else if (!strcmp(table, "orders"))
			row_orders(s, n, nusers);
		else if (!strcmp(table, "posts"))
			row_posts(s, n, nusers);
		else if (!strcmp(table, "events"))
			row_events(s, n, nusers);
		else if (!strcmp(table, "attachments"))
			row_attachments(s, n, nusers);
		else
			die("unknown table %s", table);
	}
	sink_flush(s);
}

static void cmd_rand(uint64_t bytes, uint64_t seed)
{
	rng_t r;
	rng_seed(&r, seed);
	g_sink.fd = 1;
	g_sink.left = bytes;
	g_sink.len = 0;
	gen_content(&g_sink, K_BIN, &r, 0);
	sink_flush(&g_sink);
}

static uint64_t num(const char *s)
{
	char *e;
	errno = 0;
	unsigned long long v = strtoull(s, &e, 10);
	if (errno || *e || e == s)
		die("not a number: %s", s);
	return v;
}

int main(int argc, char **argv)
{
	vocab_init();
	umask(022);
	if (argc == 4 && !strcmp(argv[1], "files")) {
		double sc = atof(argv[3]);
		if (!(sc > 0))
			die("bad scale %s", argv[3]);
		cmd_files(argv[2], sc);
	} else if (argc == 5 && !strcmp(argv[1], "mutate")) {
		cmd_mutate(argv[2], num(argv[3]), num(argv[4]));
	} else if (argc == 6 && !strcmp(argv[1], "rows")) {
		cmd_rows(argv[2], num(argv[3]), num(argv[4]), num(argv[5]));
	} else if (argc == 4 && !strcmp(argv[1], "manifest")) {
		cmd_manifest(argv[2], argv[3]);
	} else if (argc == 4 && !strcmp(argv[1], "rand")) {
		cmd_rand(num(argv[2]), num(argv[3]));
	} else {
		fprintf(stderr,
			"usage: benchgen files ROOT SCALE | mutate ROOT SEED PERMILLE |\n"
			"       rows TABLE FIRST COUNT NUSERS | manifest ROOT content|meta | rand BYTES SEED\n");
		return 2;
	}
	if (fflush(stdout) || ferror(stdout))
		die("stdout: %s", strerror(errno));
	return 0;
}
