/* Genetic algorithm (METHOD.md section 5). Fitness = the host's reward.
 *   generation 0: `population` uniformly random schemes;
 *   every later generation: the `elites` fittest schemes survive unchanged (not re-scored), the
 *   other population - elites are children: two parents each chosen by a tournament of
 *   `tournament` (the fittest of that many drawn with replacement), uniform crossover with
 *   probability `crossover` (each bit from either parent, else a copy of the first parent),
 *   then every bit flipped with probability `mutation` (0 = 1/L).
 * One step = one generation: ask returns the schemes still to be scored (all of generation 0,
 * the children afterwards). progress.baseline = the population's mean fitness. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t ga_options[] = {
    {.name = "population", .type = LTH4SA_OPTION_INT, .default_value = 20, .min_value = 2, .max_value = 4096, .doc = "schemes per generation"},
    {.name = "tournament", .type = LTH4SA_OPTION_INT, .default_value = 3, .min_value = 1, .max_value = 4096, .doc = "tournament size of parent selection"},
    {.name = "crossover", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.9, .min_value = 0, .max_value = 1, .doc = "probability of uniform crossover (else the first parent is copied)"},
    {.name = "mutation", .type = LTH4SA_OPTION_FLOAT, .default_value = 0, .min_value = 0, .max_value = 1, .doc = "bit-flip probability per block (0 = 1/L)"},
    {.name = "elites", .type = LTH4SA_OPTION_INT, .default_value = 2, .min_value = 0, .max_value = 4096, .doc = "fittest schemes carried over unchanged"},
};

static const lth4sa_descriptor_t ga_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "ga",
    .name = "Genetic algorithm",
    .version = "1.0.0",
    .description = "tournament selection, uniform crossover, bit-flip mutation, elitism (baseline)",
    .license = "MIT",
    .option_count = sizeof ga_options / sizeof ga_options[0],
    .options = ga_options};

/* blob: [generation][population P x (L bits, fitness)][children C x L bits] */
typedef struct ga {
    lth4sa_searcher_base_t base;
    int64_t P, T, E;
    double crossover, mutation;
    double *population, *children;
} ga_t;

#define GA_BITS(s, i) ((s)->population + (i) * ((s)->base.L + 1))
#define GA_FITNESS(s, i) GA_BITS(s, i)[(s)->base.L]

static lth4sa_status_t ga_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                 void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "ga: the search space has no blocks");
    const int64_t P = (int64_t)lth4sa_option(o, n, "population", 20), E = (int64_t)lth4sa_option(o, n, "elites", 2);
    if (E >= P) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "ga: elites (%lld) must be fewer than population (%lld)", (long long)E, (long long)P);
    const int64_t L = space->blocks;
    ga_t *s = lth4sa_searcher_new(sizeof *s, host, "ga", space, (size_t)(1 + P * (L + 1) + P * L));
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "ga: out of memory (or more than 64 stages)");
    s->P = P;
    s->E = E;
    s->T = (int64_t)lth4sa_option(o, n, "tournament", 3);
    s->crossover = lth4sa_option(o, n, "crossover", 0.9);
    s->mutation = lth4sa_option(o, n, "mutation", 0);
    if (s->mutation <= 0) s->mutation = 1.0 / (double)L;
    s->population = s->base.blob + 1;
    s->children = s->population + P * (L + 1);
    *instance = s;
    return LTH4SA_OK;
}

/* The index of a tournament winner. */
static int64_t ga_select(ga_t *s) {
    int64_t best = lth4sa_draw_index(&s->base, s->P);
    for (int64_t t = 1; t < s->T; t++) {
        const int64_t c = lth4sa_draw_index(&s->base, s->P);
        if (GA_FITNESS(s, c) > GA_FITNESS(s, best)) best = c;
    }
    return best;
}

static int64_t ga_pending(const ga_t *s) { return s->base.blob[0] == 0 ? s->P : s->P - s->E; }

static lth4sa_status_t ga_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    ga_t *s = instance;
    const int64_t L = s->base.L, C = ga_pending(s);
    lth4sa_status_t room = lth4sa_check_room(&s->base, capacity, C, error);
    if (room != LTH4SA_OK) return room;
    for (int64_t c = 0; c < C; c++) {
        double *child = s->children + c * L;
        if (s->base.blob[0] == 0) {
            for (int64_t l = 0; l < L; l++) child[l] = lth4sa_draw(&s->base) < 0.5;
        } else {
            const double *a = GA_BITS(s, ga_select(s)), *b = GA_BITS(s, ga_select(s));
            const int cross = lth4sa_draw(&s->base) < s->crossover;
            for (int64_t l = 0; l < L; l++) {
                child[l] = cross && lth4sa_draw(&s->base) < 0.5 ? b[l] : a[l];
                if (lth4sa_draw(&s->base) < s->mutation) child[l] = 1 - child[l];
            }
        }
        for (int64_t l = 0; l < L; l++) bits[c * L + l] = child[l] > 0.5;
    }
    *count = (uint32_t)C;
    return LTH4SA_OK;
}

static lth4sa_status_t ga_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                               lth4sa_error_t *error) {
    ga_t *s = instance;
    const int64_t L = s->base.L, C = ga_pending(s);
    if ((int64_t)count != C) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "ga: told %u scores for %lld schemes", count, (long long)C);
    /* survivors first: sort the population by fitness (descending), keep the elites */
    const int64_t keep = s->P - C;
    for (int64_t i = 0; i < keep; i++) {  /* selection sort of the first `keep` places */
        int64_t best = i;
        for (int64_t j = i + 1; j < s->P; j++) if (GA_FITNESS(s, j) > GA_FITNESS(s, best)) best = j;
        for (int64_t l = 0; l <= L; l++) { const double t = GA_BITS(s, i)[l]; GA_BITS(s, i)[l] = GA_BITS(s, best)[l]; GA_BITS(s, best)[l] = t; }
    }
    double mean = 0;
    for (int64_t c = 0; c < C; c++) {
        double *slot = GA_BITS(s, keep + c);
        memcpy(slot, s->children + c * L, sizeof(double) * (size_t)L);
        slot[L] = scored[c].reward;
    }
    for (int64_t i = 0; i < s->P; i++) mean += GA_FITNESS(s, i);
    s->base.blob[0] += 1;
    progress->baseline = mean / (double)s->P;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t ga_api = LTH4SA_BLOB_SEARCHER_API(ga_create, lth4sa_searcher_free, ga_ask, ga_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(ga_descriptor, ga_api)
