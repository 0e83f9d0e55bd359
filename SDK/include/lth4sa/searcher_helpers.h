/* lth4sa SDK: header-only helpers for searcher plugins, used by every first-party searcher
 * (Plugins/) and available to third parties: the instance base whose whole saved state is one
 * array of doubles (so save/load are a copy and resumes are exact), random draws through the
 * host's seeded generator, Adam on doubles, top-k selection. Nothing here is part of the ABI:
 * it compiles into the plugin. */
#ifndef LTH4SA_SEARCHER_HELPERS_H
#define LTH4SA_SEARCHER_HELPERS_H

#include "helpers.h"

/** The first member of every first-party searcher instance. Everything a resume needs lives
 *  in `blob` (blob_len doubles); other members are configuration or scratch. */
typedef struct lth4sa_searcher_base {
    const lth4sa_host_t *host;
    const char *id;
    int64_t L;            /* blocks */
    int64_t stage_count;
    int64_t stage_sizes[64];
    double *blob;
    size_t blob_len;
} lth4sa_searcher_base_t;

/** Allocates an instance of `size` bytes (base first) with a zeroed blob of `blob_len` doubles;
 *  NULL when out of memory or when the space has more than 64 stages. */
static inline void *lth4sa_searcher_new(size_t size, const lth4sa_host_t *host, const char *id, const lth4sa_search_space_t *space,
                                        size_t blob_len) {
    if (space->stage_count > 64) return NULL;
    lth4sa_searcher_base_t *b = calloc(1, size);
    if (!b) return NULL;
    b->blob = calloc(blob_len ? blob_len : 1, sizeof(double));
    if (!b->blob) { free(b); return NULL; }
    b->host = host;
    b->id = id;
    b->L = space->blocks;
    b->stage_count = space->stage_count;
    for (uint32_t s = 0; s < space->stage_count; s++) b->stage_sizes[s] = space->stage_sizes[s];
    b->blob_len = blob_len;
    return b;
}

/** Frees the blob and the instance (searchers with more allocations free those first). */
static inline void lth4sa_searcher_free(void *instance) {
    lth4sa_searcher_base_t *b = instance;
    free(b->blob);
    free(b);
}

/** A uniform number in [0, 1) from the host's generator (saved with the search). */
static inline double lth4sa_draw(const lth4sa_searcher_base_t *b) { return (double)b->host->uniform(b->host->context); }

/** A uniform integer in [0, n). */
static inline int64_t lth4sa_draw_index(const lth4sa_searcher_base_t *b, int64_t n) {
    int64_t i = (int64_t)(lth4sa_draw(b) * (double)n);
    return i < n ? i : n - 1;
}

/** Fails unless `capacity` schemes leave room for the `needed` of this step. */
static inline lth4sa_status_t lth4sa_check_room(const lth4sa_searcher_base_t *b, uint32_t capacity, int64_t needed, lth4sa_error_t *error) {
    if ((int64_t)capacity >= needed) return LTH4SA_OK;
    return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: room for %u schemes, %lld needed", b->id, capacity, (long long)needed);
}

static inline uint64_t lth4sa_searcher_state_size(void *instance) {
    return (uint64_t)(((lth4sa_searcher_base_t *)instance)->blob_len * sizeof(double));
}

static inline lth4sa_status_t lth4sa_searcher_save(void *instance, void *buffer, uint64_t size, lth4sa_error_t *error) {
    lth4sa_searcher_base_t *b = instance;
    if (size != lth4sa_searcher_state_size(b))
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: save buffer of %llu bytes, need %llu", b->id, (unsigned long long)size,
                           (unsigned long long)lth4sa_searcher_state_size(b));
    memcpy(buffer, b->blob, (size_t)size);
    return LTH4SA_OK;
}

static inline lth4sa_status_t lth4sa_searcher_load(void *instance, const void *buffer, uint64_t size, lth4sa_error_t *error) {
    lth4sa_searcher_base_t *b = instance;
    if (size != lth4sa_searcher_state_size(b))
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: state of %llu bytes does not fit this search space and options (%llu expected)",
                           b->id, (unsigned long long)size, (unsigned long long)lth4sa_searcher_state_size(b));
    memcpy(b->blob, buffer, (size_t)size);
    return LTH4SA_OK;
}

/** The searcher table of a blob-state searcher with these create/destroy/ask/tell. */
#define LTH4SA_BLOB_SEARCHER_API(the_create, the_destroy, the_ask, the_tell)                                      \
    {.struct_size = sizeof(lth4sa_searcher_api_t), .create = (the_create), .destroy = (the_destroy), .ask = (the_ask), \
     .tell = (the_tell), .state_size = lth4sa_searcher_state_size, .save = lth4sa_searcher_save, .load = lth4sa_searcher_load}

/** One Adam step (betas 0.9, 0.999, eps 1e-8) on n parameters; `t` counts steps (saved state);
 *  the gradient is cleared. */
static inline void lth4sa_adam_step(double *params, double *grad, double *m, double *v, double *t, int64_t n, double lr) {
    const double b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const double step = ++*t;
    for (int64_t i = 0; i < n; i++) {
        m[i] = b1 * m[i] + (1 - b1) * grad[i];
        v[i] = b2 * v[i] + (1 - b2) * grad[i] * grad[i];
        params[i] -= lr * (m[i] / (1 - pow(b1, step))) / (sqrt(v[i] / (1 - pow(b2, step))) + eps);
        grad[i] = 0;
    }
}

/** bits[l] = 1 for the k largest `score` entries of n (ties: the lower index wins), else 0. */
static inline void lth4sa_top_k(const double *score, int64_t n, int64_t k, uint8_t *bits) {
    for (int64_t l = 0; l < n; l++) {
        int64_t above = 0;
        for (int64_t j = 0; j < n; j++)
            if (score[j] > score[l] || (score[j] == score[l] && j < l)) above++;
        bits[l] = above < k;
    }
}

/** round(ratio * n), kept in [0, n]. */
static inline int64_t lth4sa_count_for_ratio(double ratio, int64_t n) {
    int64_t k = (int64_t)llround(ratio * (double)n);
    return k < 0 ? 0 : (k > n ? n : k);
}

/** The SAM parameters of every block through the host capability LTH4SA_HOST_SAM_PARAMETERS
 *  (for pruning searchers): values[l] (count[l] floats, malloc'ed; free with
 *  lth4sa_block_parameters_free). Fails with a clear message when the host lacks the capability
 *  or no block has parameters. */
typedef struct lth4sa_block_parameters {
    int64_t blocks;
    int64_t *count;
    float **values;
} lth4sa_block_parameters_t;

static inline void lth4sa_block_parameters_free(lth4sa_block_parameters_t *p) {
    for (int64_t l = 0; l < p->blocks && p->values; l++) free(p->values[l]);
    free(p->values);
    free(p->count);
    memset(p, 0, sizeof *p);
}

static inline lth4sa_status_t lth4sa_block_parameters_read(const lth4sa_search_space_t *space, const char *id, lth4sa_block_parameters_t *out,
                                                           lth4sa_error_t *error) {
    memset(out, 0, sizeof *out);
    const lth4sa_sam_parameters_api_t *api = space->host_extension(space->extension_context, LTH4SA_HOST_SAM_PARAMETERS);
    if (!api || api->struct_size < sizeof *api)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "%s: needs the host capability %s (the trained supernet's SAM parameters), which this host does not offer",
                           id, LTH4SA_HOST_SAM_PARAMETERS);
    out->blocks = space->blocks;
    out->count = calloc(space->blocks, sizeof(int64_t));
    out->values = calloc(space->blocks, sizeof(float *));
    if (!out->count || !out->values) { lth4sa_block_parameters_free(out); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "%s: out of memory", id); }
    int64_t total = 0;
    for (uint32_t l = 0; l < space->blocks; l++) {
        const int64_t n = api->count(space->extension_context, l);
        out->values[l] = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
        if (!out->values[l]) { lth4sa_block_parameters_free(out); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "%s: out of memory", id); }
        out->count[l] = n > 0 ? api->copy(space->extension_context, l, out->values[l], n) : 0;
        total += out->count[l];
    }
    if (total == 0) {
        lth4sa_block_parameters_free(out);
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "%s: the SAM has no parameters at any block, so there is nothing to rank (use a SAM with parameters)", id);
    }
    return LTH4SA_OK;
}

/* ---- one-shot searchers (pruning): the scheme is decided at create and proposed every step ---- */

/** Blob layout of a one-shot searcher: blob[0..L) the scheme's bits, blob[L] the step count. */
static inline size_t lth4sa_fixed_blob_len(int64_t L) { return (size_t)L + 1; }

static inline lth4sa_status_t lth4sa_fixed_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    (void)capacity; (void)error;
    const lth4sa_searcher_base_t *b = instance;
    for (int64_t l = 0; l < b->L; l++) bits[l] = b->blob[l] > 0.5;
    *count = 1;
    return LTH4SA_OK;
}

static inline lth4sa_status_t lth4sa_fixed_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count,
                                                lth4sa_searcher_progress_t *progress, lth4sa_error_t *error) {
    (void)scored; (void)count; (void)progress; (void)error;
    lth4sa_searcher_base_t *b = instance;
    b->blob[b->L] += 1;
    return LTH4SA_OK;
}

#endif
