#include "repo/chunker.h"

#include "core/mem.h"
#include "repo/crypto.h"

#include <stdlib.h>
#include <string.h>

struct chunker {
    chunker_params p;
    uint64_t mask_s; /* before avg: harder to match */
    uint64_t mask_l; /* after avg: easier to match */
    uint64_t gear[256];
};

static int log2u(uint32_t v)
{
    int b = 0;
    while (v > 1) {
        v >>= 1;
        b++;
    }
    return b;
}

int chunker_params_check(const chunker_params *p)
{
    if (p->min < 64 || p->avg < 64 || p->min > p->avg || p->avg > p->max ||
        p->max > CHUNKER_LIMIT_MAX || (p->avg & (p->avg - 1)) != 0)
        return -1;
    return 0;
}

/* Top `bits` bits set: with a left-shifting gear hash, the high bits depend
 * on the last 64 input bytes, the low ones only on the last few. */
static uint64_t top_mask(int bits)
{
    if (bits <= 0)
        return 0;
    if (bits >= 64)
        return ~0ull;
    return ~0ull << (64 - bits);
}

chunker *chunker_new(const chunker_params *p, const unsigned char seed[32])
{
    chunker *c;
    int bits;

    if (chunker_params_check(p) < 0)
        return NULL;
    c = sm_xcalloc(1, sizeof(*c));
    c->p = *p;
    bits = log2u(p->avg);
    c->mask_s = top_mask(bits + 2);
    c->mask_l = top_mask(bits - 2);
    for (int i = 0; i < 256; i += 4) {
        unsigned char in[36], out[32];
        memcpy(in, seed, 32);
        in[32] = (unsigned char)i;
        in[33] = 'g';
        in[34] = 'e';
        in[35] = 'a';
        crypto_sha256(in, sizeof(in), out);
        for (int k = 0; k < 4; k++) {
            uint64_t v = 0;
            for (int b = 0; b < 8; b++)
                v = v << 8 | out[k * 8 + b];
            c->gear[i + k] = v;
        }
    }
    return c;
}

void chunker_free(chunker *c)
{
    free(c);
}

const chunker_params *chunker_get_params(const chunker *c)
{
    return &c->p;
}

size_t chunker_cut(const chunker *c, const unsigned char *p, size_t n)
{
    size_t end, norm, i;
    uint64_t h = 0;

    if (n <= c->p.min)
        return n;
    end = n < c->p.max ? n : c->p.max;
    norm = c->p.avg < end ? c->p.avg : end;
    /* Skip the first min bytes; the hash warms up over 64 bytes, after which
     * it depends only on the content, not on where the chunk started. */
    i = c->p.min - 64;
    for (; i < c->p.min; i++)
        h = (h << 1) + c->gear[p[i]];
    for (; i < norm; i++) {
        h = (h << 1) + c->gear[p[i]];
        if (!(h & c->mask_s))
            return i + 1;
    }
    for (; i < end; i++) {
        h = (h << 1) + c->gear[p[i]];
        if (!(h & c->mask_l))
            return i + 1;
    }
    return end;
}
