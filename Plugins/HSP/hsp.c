/* HSP, the heuristic baseline (METHOD.md section 5): connect every k-th block starting at an
 * offset, d_l = 1 iff (l - offset) mod k == 0, counting l over the whole network (or from each
 * stage's first block with per_stage = 1). With period = 2, offset 0: 1010...; offset 1:
 * 0101...; period 3: 100100..., 010010..., 001001....
 * period > 0 proposes that one pattern every step; period = 0 cycles through every pattern
 * with k = 2..max_period and offset = 0..k-1, one per step (the host keeps the best). */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t hsp_options[] = {
    {.name = "period", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 1024, .doc = "k: connect every k-th block (0 = cycle through k = 2..max_period, all offsets)"},
    {.name = "offset", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 1023, .doc = "first connected block (with period > 0)"},
    {.name = "max_period", .type = LTH4SA_OPTION_INT, .default_value = 3, .min_value = 1, .max_value = 1024, .doc = "largest k of the cycle (with period = 0)"},
    {.name = "per_stage", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 1, .doc = "1 = count blocks from each stage's first block"},
};

static const lth4sa_descriptor_t hsp_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "hsp",
    .name = "HSP heuristic",
    .version = "1.0.0",
    .description = "every k-th block with an offset: 1010..., 0101..., 100100..., 010010... (baseline)",
    .license = "MIT",
    .option_count = sizeof hsp_options / sizeof hsp_options[0],
    .options = hsp_options};

typedef struct hsp {
    lth4sa_searcher_base_t base;  /* blob[0]: index of the next pattern */
    int64_t period, offset, max_period, per_stage;
} hsp_t;

static lth4sa_status_t hsp_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                  void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "hsp: the search space has no blocks");
    const int64_t period = (int64_t)lth4sa_option(o, n, "period", 0), offset = (int64_t)lth4sa_option(o, n, "offset", 0);
    if (period > 0 && offset >= period)
        return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "hsp: offset %lld must be below period %lld", (long long)offset, (long long)period);
    const int64_t max_period = (int64_t)lth4sa_option(o, n, "max_period", 3);
    if (period == 0 && max_period < 2) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "hsp: max_period must be at least 2 to cycle");
    hsp_t *s = lth4sa_searcher_new(sizeof *s, host, "hsp", space, 1);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "hsp: out of memory (or more than 64 stages)");
    s->period = period;
    s->offset = offset;
    s->max_period = max_period;
    s->per_stage = (int64_t)lth4sa_option(o, n, "per_stage", 0);
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t hsp_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    (void)capacity; (void)error;
    hsp_t *s = instance;
    int64_t k = s->period, offset = s->offset;
    if (k == 0) {  /* pattern index i -> (k, offset) in the order (2,0) (2,1) (3,0) (3,1) (3,2) ... */
        int64_t i = (int64_t)s->base.blob[0], total = 0;
        for (int64_t p = 2; p <= s->max_period; p++) total += p;
        i %= total;
        for (k = 2; i >= k; k++) i -= k;
        offset = i;
    }
    int64_t l = 0;
    for (int64_t st = 0; st < s->base.stage_count; st++)
        for (int64_t j = 0; j < s->base.stage_sizes[st]; j++, l++) {
            const int64_t position = s->per_stage ? j : l;
            bits[l] = position >= offset && (position - offset) % k == 0;
        }
    *count = 1;
    return LTH4SA_OK;
}

static lth4sa_status_t hsp_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                                lth4sa_error_t *error) {
    (void)scored; (void)count; (void)progress; (void)error;
    ((hsp_t *)instance)->base.blob[0] += 1;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t hsp_api = LTH4SA_BLOB_SEARCHER_API(hsp_create, lth4sa_searcher_free, hsp_ask, hsp_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(hsp_descriptor, hsp_api)
