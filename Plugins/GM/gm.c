/* GM pruning (geometric median, after FPGM; METHOD.md section 5): within each stage, the SAM
 * parameter vectors of its blocks (host capability LTH4SA_HOST_SAM_PARAMETERS) have a geometric
 * median m (Weiszfeld's iteration from the mean, up to 200 steps, tolerance 1e-9 relative).
 * SAMs near m are the most replaceable; the searcher keeps, per stage, the round(ratio * n_s)
 * blocks farthest from m (ties: the earlier block). Blocks sharing one SAM (Full-Share) all sit
 * at the median, so every distance is 0 and the earlier blocks are kept.
 * The scheme is fixed at create; every step proposes it again. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t gm_options[] = {
    {.name = "ratio", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.5, .min_value = 0, .max_value = 1, .doc = "share of each stage's blocks kept (the farthest from the stage's geometric median)"},
};

static const lth4sa_descriptor_t gm_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "gm",
    .name = "GM (geometric-median) pruning",
    .version = "1.0.0",
    .description = "per stage, keeps the SAMs farthest from the geometric median of the stage's SAMs (FPGM baseline)",
    .license = "MIT",
    .option_count = sizeof gm_options / sizeof gm_options[0],
    .options = gm_options};

static double gm_distance(const float *a, const double *m, int64_t n) {
    double d = 0;
    for (int64_t i = 0; i < n; i++) d += ((double)a[i] - m[i]) * ((double)a[i] - m[i]);
    return sqrt(d);
}

/* The geometric median of the k vectors `v[0..k)` of n values into m (Weiszfeld). */
static void gm_median(float *const *v, int64_t k, int64_t n, double *m, double *next) {
    for (int64_t i = 0; i < n; i++) { m[i] = 0; for (int64_t j = 0; j < k; j++) m[i] += v[j][i]; m[i] /= (double)k; }
    for (int iter = 0; iter < 200; iter++) {
        double wsum = 0, scale = 0, moved = 0;
        for (int64_t i = 0; i < n; i++) next[i] = 0;
        for (int64_t j = 0; j < k; j++) {
            const double d = gm_distance(v[j], m, n);
            if (d < 1e-12) return;  /* the median sits on a point (Weiszfeld's fixed point) */
            for (int64_t i = 0; i < n; i++) next[i] += v[j][i] / d;
            wsum += 1 / d;
        }
        for (int64_t i = 0; i < n; i++) {
            next[i] /= wsum;
            moved += (next[i] - m[i]) * (next[i] - m[i]);
            scale += m[i] * m[i];
            m[i] = next[i];
        }
        if (moved <= 1e-18 * (scale + 1e-30)) return;
    }
}

static lth4sa_status_t gm_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                 void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "gm: the search space has no blocks");
    lth4sa_block_parameters_t params;
    lth4sa_status_t st = lth4sa_block_parameters_read(space, "gm", &params, error);
    if (st != LTH4SA_OK) return st;
    lth4sa_searcher_base_t *s = lth4sa_searcher_new(sizeof *s, host, "gm", space, lth4sa_fixed_blob_len(space->blocks));
    int64_t longest = 1;
    for (uint32_t l = 0; l < space->blocks; l++) if (params.count[l] > longest) longest = params.count[l];
    double *m = calloc((size_t)longest, sizeof(double)), *next = calloc((size_t)longest, sizeof(double));
    double *distance = calloc(space->blocks, sizeof(double));
    uint8_t *bits = calloc(space->blocks, 1);
    if (!s || !m || !next || !distance || !bits) {
        free(m); free(next); free(distance); free(bits); lth4sa_block_parameters_free(&params);
        if (s) lth4sa_searcher_free(s);
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "gm: out of memory (or more than 64 stages)");
    }
    const double ratio = lth4sa_option(o, n, "ratio", 0.5);
    int64_t first = 0;
    st = LTH4SA_OK;
    for (uint32_t stage = 0; stage < space->stage_count && st == LTH4SA_OK; first += space->stage_sizes[stage], stage++) {
        const int64_t k = space->stage_sizes[stage], len = params.count[first];
        for (int64_t j = 1; j < k; j++)
            if (params.count[first + j] != len)
                st = lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "gm: blocks of stage %u have SAMs of different sizes (%lld and %lld values)", stage,
                                 (long long)len, (long long)params.count[first + j]);
        if (st != LTH4SA_OK || k == 0) continue;
        gm_median(params.values + first, k, len, m, next);
        for (int64_t j = 0; j < k; j++) distance[first + j] = gm_distance(params.values[first + j], m, len);
        lth4sa_top_k(distance + first, k, lth4sa_count_for_ratio(ratio, k), bits + first);
    }
    for (uint32_t l = 0; l < space->blocks; l++) s->blob[l] = bits[l];
    free(m); free(next); free(distance); free(bits); lth4sa_block_parameters_free(&params);
    if (st != LTH4SA_OK) { lth4sa_searcher_free(s); return st; }
    *instance = s;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t gm_api = LTH4SA_BLOB_SEARCHER_API(gm_create, lth4sa_searcher_free, lth4sa_fixed_ask, lth4sa_fixed_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(gm_descriptor, gm_api)
