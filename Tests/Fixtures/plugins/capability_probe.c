/* A searcher that reads the host capabilities and reports what it got through `tell`'s
 * progress: p_bar = parameters of the all-ones scheme, baseline = count + first value of
 * block 1's SAM parameters. Proposes the all-ones scheme. */
#include <lth4sa/helpers.h>
#include <stdlib.h>
#include <string.h>

typedef struct probe {
    uint32_t blocks;
    const lth4sa_scheme_cost_api_t *cost;
    const lth4sa_sam_parameters_api_t *stats;
    void *ctx;
} probe_t;

static const lth4sa_descriptor_t d = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "probe",
    .name = "Capability probe",
    .version = "0.1.0",
    .description = "test fixture",
    .license = "MIT",
    .option_count = 0};

static lth4sa_status_t create(const lth4sa_host_t *h, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n, void **out, lth4sa_error_t *e) {
    (void)h; (void)o; (void)n; (void)e;
    probe_t *p = calloc(1, sizeof *p);
    p->blocks = space->blocks;
    p->ctx = space->extension_context;
    p->cost = space->host_extension(space->extension_context, LTH4SA_HOST_SCHEME_COST);
    p->stats = space->host_extension(space->extension_context, LTH4SA_HOST_SAM_PARAMETERS);
    *out = p;
    return LTH4SA_OK;
}
static void destroy(void *i) { free(i); }
static lth4sa_status_t ask(void *i, uint8_t *bits, uint32_t cap, uint32_t *count, lth4sa_error_t *e) {
    (void)cap; (void)e;
    probe_t *p = i;
    memset(bits, 1, p->blocks);
    *count = 1;
    return LTH4SA_OK;
}
static lth4sa_status_t tell(void *i, const lth4sa_scored_scheme_t *s, uint32_t n, lth4sa_searcher_progress_t *out, lth4sa_error_t *e) {
    (void)n; (void)e;
    probe_t *p = i;
    out->p_bar = p->cost ? (double)p->cost->parameters(p->ctx, s[0].bits) : -1;
    float first = 0;
    int64_t c = p->stats ? p->stats->count(p->ctx, 1) : -1;
    if (p->stats && c > 0) p->stats->copy(p->ctx, 1, &first, 1);
    out->baseline = (double)c * 1000 + first;
    return LTH4SA_OK;
}
static uint64_t size(void *i) { (void)i; return 0; }
static lth4sa_status_t save(void *i, void *b, uint64_t s, lth4sa_error_t *e) { (void)i; (void)b; (void)s; (void)e; return 0; }
static lth4sa_status_t load(void *i, const void *b, uint64_t s, lth4sa_error_t *e) { (void)i; (void)b; (void)s; (void)e; return 0; }
static const lth4sa_searcher_api_t api = {
    .struct_size = sizeof(lth4sa_searcher_api_t),
    .create = create,
    .destroy = destroy,
    .ask = ask,
    .tell = tell,
    .state_size = size,
    .save = save,
    .load = load};
LTH4SA_SINGLE_SEARCHER_ENTRY(d, api)
