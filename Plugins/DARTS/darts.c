/* DARTS (METHOD.md section 5): a continuous gate per block, w_l = sigmoid(alpha_l), mixing
 * F' = w_l * SAM(F) + (1 - w_l) * F, through the host capability LTH4SA_HOST_GATE_GRADIENTS
 * (the host trains a copy of the supernet, never the one other searchers score with).
 * Every step runs `inner` first-order bilevel updates:
 *     one SGD step of the weights on a D_train batch with the current gates (host), then
 *     alpha -= Adam(lr) of dL_val/dalpha = dL_val/dw * w (1 - w) on a D_val batch (host gradient);
 * then proposes the derived scheme: alpha_l > 0 (ratio = 0) or the top round(ratio * L) alphas.
 * progress.p_bar = mean_l max(w_l, 1 - w_l) (how decided the gates are), baseline = last L_val. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t darts_options[] = {
    {.name = "lr", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.05, .min_value = 1e-8, .max_value = 10, .doc = "Adam learning rate of the gate logits alpha"},
    {.name = "inner", .type = LTH4SA_OPTION_INT, .default_value = 1, .min_value = 1, .max_value = 1000, .doc = "bilevel updates (weights, then gates) per step"},
    {.name = "ratio", .type = LTH4SA_OPTION_FLOAT, .default_value = 0, .min_value = 0, .max_value = 1, .doc = "derived scheme: top round(ratio * L) gates (0 = every gate with alpha > 0)"},
    {.name = "init", .type = LTH4SA_OPTION_FLOAT, .default_value = 0, .min_value = -20, .max_value = 20, .doc = "initial alpha of every block (0 = w 0.5)"},
};

static const lth4sa_descriptor_t darts_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "darts",
    .name = "DARTS continuous gates",
    .version = "1.0.0",
    .description = "first-order bilevel optimisation of a sigmoid gate per block (baseline; needs the host's gate gradients)",
    .license = "MIT",
    .option_count = sizeof darts_options / sizeof darts_options[0],
    .options = darts_options};

enum { D_ADAM_STEP, D_LOSS, D_SCALARS };

typedef struct darts {
    lth4sa_searcher_base_t base;  /* blob: alpha [L], adam m [L], adam v [L], scalars */
    const lth4sa_gate_gradients_api_t *gates_api;
    void *gates_context;
    int64_t inner;
    double lr, ratio;
    double *alpha, *m, *v, *scalars;
    double *w, *grad;  /* scratch */
} darts_t;

static void darts_destroy(void *instance) {
    darts_t *s = instance;
    free(s->w);
    free(s->grad);
    lth4sa_searcher_free(s);
}

static lth4sa_status_t darts_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                    void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "darts: the search space has no blocks");
    const lth4sa_gate_gradients_api_t *api = space->host_extension(space->extension_context, LTH4SA_HOST_GATE_GRADIENTS);
    if (!api || api->struct_size < sizeof *api)
        return lth4sa_fail(error, LTH4SA_ERR_UNSUPPORTED, "darts: needs the host capability %s (gate gradients through the supernet), which this host does not offer",
                           LTH4SA_HOST_GATE_GRADIENTS);
    const int64_t L = space->blocks;
    darts_t *s = lth4sa_searcher_new(sizeof *s, host, "darts", space, (size_t)(3 * L + D_SCALARS));
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "darts: out of memory (or more than 64 stages)");
    s->w = calloc((size_t)L, sizeof(double));
    s->grad = calloc((size_t)L, sizeof(double));
    if (!s->w || !s->grad) { darts_destroy(s); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "darts: out of memory"); }
    s->gates_api = api;
    s->gates_context = space->extension_context;
    s->inner = (int64_t)lth4sa_option(o, n, "inner", 1);
    s->lr = lth4sa_option(o, n, "lr", 0.05);
    s->ratio = lth4sa_option(o, n, "ratio", 0);
    s->alpha = s->base.blob;
    s->m = s->alpha + L;
    s->v = s->m + L;
    s->scalars = s->v + L;
    const double init = lth4sa_option(o, n, "init", 0);
    for (int64_t l = 0; l < L; l++) s->alpha[l] = init;
    *instance = s;
    return LTH4SA_OK;
}

static void darts_gates(darts_t *s) {
    for (int64_t l = 0; l < s->base.L; l++) s->w[l] = 1 / (1 + exp(-s->alpha[l]));
}

static lth4sa_status_t darts_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    (void)capacity;
    darts_t *s = instance;
    const int64_t L = s->base.L;
    for (int64_t k = 0; k < s->inner; k++) {
        darts_gates(s);
        if (isnan(s->gates_api->train_weights(s->gates_context, s->w)))
            return lth4sa_fail(error, LTH4SA_ERR_INTERNAL, "darts: the host failed to train the weights with the gates");
        const double loss = s->gates_api->validation_gradient(s->gates_context, s->w, s->grad);
        if (isnan(loss)) return lth4sa_fail(error, LTH4SA_ERR_INTERNAL, "darts: the host failed to compute the gate gradients");
        for (int64_t l = 0; l < L; l++) s->grad[l] *= s->w[l] * (1 - s->w[l]);  /* dw/dalpha */
        lth4sa_adam_step(s->alpha, s->grad, s->m, s->v, &s->scalars[D_ADAM_STEP], L, s->lr);
        s->scalars[D_LOSS] = loss;
    }
    if (s->ratio > 0) lth4sa_top_k(s->alpha, L, lth4sa_count_for_ratio(s->ratio, L), bits);
    else for (int64_t l = 0; l < L; l++) bits[l] = s->alpha[l] > 0;
    *count = 1;
    return LTH4SA_OK;
}

static lth4sa_status_t darts_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                                  lth4sa_error_t *error) {
    (void)scored; (void)count; (void)error;
    darts_t *s = instance;
    darts_gates(s);
    double decided = 0;
    for (int64_t l = 0; l < s->base.L; l++) decided += fmax(s->w[l], 1 - s->w[l]);
    progress->p_bar = decided / (double)s->base.L;
    progress->baseline = s->scalars[D_LOSS];
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t darts_api = LTH4SA_BLOB_SEARCHER_API(darts_create, darts_destroy, darts_ask, darts_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(darts_descriptor, darts_api)
