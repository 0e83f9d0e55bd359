/* L1 pruning of SAM connections (METHOD.md section 5): rank blocks by the L1 norm of their
 * SAM's parameters in the trained supernet (host capability LTH4SA_HOST_SAM_PARAMETERS) and
 * keep the top round(ratio * L); ties go to the earlier block. With `normalize` = 1 the norm
 * is divided by the parameter count (mean |w|), so stages of different width compare fairly.
 * Blocks sharing one SAM (Full-Share) report the same values, so they tie.
 * The scheme is fixed at create; every step proposes it again. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t l1_options[] = {
    {.name = "ratio", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.5, .min_value = 0, .max_value = 1, .doc = "share of blocks kept (top round(ratio * L) by L1 norm)"},
    {.name = "normalize", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 1, .doc = "1 = rank by mean |w| instead of the sum"},
};

static const lth4sa_descriptor_t l1_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "l1",
    .name = "L1 pruning",
    .version = "1.0.0",
    .description = "keeps the SAMs with the largest L1 parameter norm in the trained supernet (baseline)",
    .license = "MIT",
    .option_count = sizeof l1_options / sizeof l1_options[0],
    .options = l1_options};

static lth4sa_status_t l1_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                 void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "l1: the search space has no blocks");
    lth4sa_block_parameters_t params;
    lth4sa_status_t st = lth4sa_block_parameters_read(space, "l1", &params, error);
    if (st != LTH4SA_OK) return st;
    lth4sa_searcher_base_t *s = lth4sa_searcher_new(sizeof *s, host, "l1", space, lth4sa_fixed_blob_len(space->blocks));
    double *norm = calloc(space->blocks, sizeof(double));
    uint8_t *bits = calloc(space->blocks, 1);
    if (!s || !norm || !bits) {
        free(norm); free(bits); lth4sa_block_parameters_free(&params);
        if (s) lth4sa_searcher_free(s);
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "l1: out of memory (or more than 64 stages)");
    }
    const int normalize = lth4sa_option(o, n, "normalize", 0) > 0.5;
    for (uint32_t l = 0; l < space->blocks; l++) {
        for (int64_t i = 0; i < params.count[l]; i++) norm[l] += fabs((double)params.values[l][i]);
        if (normalize && params.count[l] > 0) norm[l] /= (double)params.count[l];
    }
    lth4sa_top_k(norm, space->blocks, lth4sa_count_for_ratio(lth4sa_option(o, n, "ratio", 0.5), space->blocks), bits);
    for (uint32_t l = 0; l < space->blocks; l++) s->blob[l] = bits[l];
    free(norm); free(bits); lth4sa_block_parameters_free(&params);
    *instance = s;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t l1_api = LTH4SA_BLOB_SEARCHER_API(l1_create, lth4sa_searcher_free, lth4sa_fixed_ask, lth4sa_fixed_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(l1_descriptor, l1_api)
