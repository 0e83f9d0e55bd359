/* Random search (METHOD.md section 5): every step samples `samples` schemes uniformly, either
 * each bit on with probability 1/2 (ratio = 0) or exactly round(ratio * L) blocks on chosen
 * uniformly (ratio > 0). The host keeps the best reward. State: none besides the host's
 * generator (the blob holds a step counter). */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t random_options[] = {
    {.name = "ratio", .type = LTH4SA_OPTION_FLOAT, .default_value = 0, .min_value = 0, .max_value = 1, .doc = "fixed connection ratio (0 = each block on with probability 1/2)"},
    {.name = "samples", .type = LTH4SA_OPTION_INT, .default_value = 1, .min_value = 1, .max_value = 4096, .doc = "schemes sampled per step"},
};

static const lth4sa_descriptor_t random_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "random",
    .name = "Random search",
    .version = "1.0.0",
    .description = "uniformly sampled schemes, optionally at a fixed connection ratio (baseline)",
    .license = "MIT",
    .option_count = sizeof random_options / sizeof random_options[0],
    .options = random_options};

typedef struct random_searcher {
    lth4sa_searcher_base_t base;
    double ratio;
    int64_t samples;
} random_searcher_t;

static lth4sa_status_t random_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                     void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "random: the search space has no blocks");
    random_searcher_t *s = lth4sa_searcher_new(sizeof *s, host, "random", space, 1);
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "random: out of memory");
    s->ratio = lth4sa_option(o, n, "ratio", 0);
    s->samples = (int64_t)lth4sa_option(o, n, "samples", 1);
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t random_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    random_searcher_t *s = instance;
    const int64_t L = s->base.L;
    lth4sa_status_t room = lth4sa_check_room(&s->base, capacity, s->samples, error);
    if (room != LTH4SA_OK) return room;
    for (int64_t j = 0; j < s->samples; j++) {
        uint8_t *d = bits + j * L;
        if (s->ratio <= 0) {
            for (int64_t l = 0; l < L; l++) d[l] = lth4sa_draw(&s->base) < 0.5;
        } else {
            /* k of L without replacement: selection sampling (Knuth's algorithm S) */
            int64_t need = lth4sa_count_for_ratio(s->ratio, L);
            for (int64_t l = 0; l < L; l++) {
                const int on = lth4sa_draw(&s->base) * (double)(L - l) < (double)need;
                d[l] = (uint8_t)on;
                need -= on;
            }
        }
    }
    *count = (uint32_t)s->samples;
    return LTH4SA_OK;
}

static lth4sa_status_t random_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                                   lth4sa_error_t *error) {
    (void)scored; (void)count; (void)progress; (void)error;
    ((random_searcher_t *)instance)->base.blob[0] += 1;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t random_api = LTH4SA_BLOB_SEARCHER_API(random_create, lth4sa_searcher_free, random_ask, random_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(random_descriptor, random_api)
