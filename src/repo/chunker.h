/* Content-defined chunking (FastCDC with normalized chunking, level 2).
 *
 * A gear hash rolls over the input; a cut is made where its top bits are
 * zero, with a stricter mask before the average size and a looser one after,
 * so sizes cluster around the average. The gear table is derived from the
 * repository's chunker key, so chunk boundaries do not reveal content to
 * someone who knows the algorithm.
 *
 *   chunker *ch = chunker_new(&params, keys.chunker);
 *   size_t n = chunker_cut(ch, buf, avail);  // avail >= params.max unless at end of input
 */
#ifndef SM_REPO_CHUNKER_H
#define SM_REPO_CHUNKER_H

#include <stddef.h>
#include <stdint.h>

typedef struct chunker_params {
    uint32_t min;
    uint32_t avg; /* a power of two */
    uint32_t max;
} chunker_params;

#define CHUNKER_DEFAULT_MIN (128u * 1024)
#define CHUNKER_DEFAULT_AVG (512u * 1024)
#define CHUNKER_DEFAULT_MAX (2u * 1024 * 1024)
#define CHUNKER_LIMIT_MAX (64u * 1024 * 1024)

typedef struct chunker chunker;

/* Returns NULL when the parameters are invalid (see chunker_params_check). */
chunker *chunker_new(const chunker_params *p, const unsigned char seed[32]);
void chunker_free(chunker *c);
/* 0 when min <= avg <= max, avg is a power of two >= 64, min >= 64, max <= 64 MiB. */
int chunker_params_check(const chunker_params *p);
const chunker_params *chunker_get_params(const chunker *c);

/* Length of the next chunk at the start of (p, n). When n < max the caller
 * must be at the end of its input: the whole rest may be returned. Never
 * returns more than max or more than n, and returns 0 only for n == 0. */
size_t chunker_cut(const chunker *c, const unsigned char *p, size_t n);

#endif
