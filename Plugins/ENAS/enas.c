/* ENAS controller (METHOD.md section 5): an LSTM emits the bits one by one.
 *   step l: x_l = embedding of the previous bit (a start token at l = 0);
 *           [i f g o] = Wx x_l + Wh h_{l-1} + b;  i,f,o = sigmoid, g = tanh;
 *           c_l = f * c_{l-1} + i * g;  h_l = o * tanh(c_l);
 *           logits = tanh_constant * tanh((Wo h_l + bo) / temperature); p_l = softmax over {off, on};
 *           d_l ~ p_l.
 *   update: REINFORCE, minimise -mean_j (R_j - b) log pi(d_j) (+ entropy bonus), b = EMA of the
 *           mean reward (first value = first mean), Adam; gradients by backpropagation through time.
 *   progress: p_bar = mean_l pi(d_l) of the first scheme of the step.
 * Parameters are initialised uniform(-init_range, init_range) from the host generator. The
 * paper reports that ENAS collapses to periodic or all-ones schemes; that is its behaviour. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t enas_options[] = {
    {.name = "hidden", .type = LTH4SA_OPTION_INT, .default_value = 32, .min_value = 1, .max_value = 1024, .doc = "LSTM hidden units"},
    {.name = "temperature", .type = LTH4SA_OPTION_FLOAT, .default_value = 5, .min_value = 1e-3, .max_value = 1e6, .doc = "logits are divided by this"},
    {.name = "tanh_constant", .type = LTH4SA_OPTION_FLOAT, .default_value = 2.5, .min_value = 1e-3, .max_value = 1e6, .doc = "then squashed to +-tanh_constant"},
    {.name = "lr", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.005, .min_value = 1e-8, .max_value = 10, .doc = "Adam learning rate"},
    {.name = "baseline_decay", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.95, .min_value = 0, .max_value = 1, .doc = "decay of the EMA reward baseline"},
    {.name = "entropy", .type = LTH4SA_OPTION_FLOAT, .default_value = 0, .min_value = 0, .max_value = 100, .doc = "weight of the entropy bonus"},
    {.name = "samples", .type = LTH4SA_OPTION_INT, .default_value = 1, .min_value = 1, .max_value = 1024, .doc = "schemes sampled per step"},
    {.name = "init_range", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.1, .min_value = 0, .max_value = 10, .doc = "uniform initialisation range"},
};

static const lth4sa_descriptor_t enas_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "enas",
    .name = "ENAS LSTM controller",
    .version = "1.0.0",
    .description = "an LSTM emits the bits one by one; REINFORCE with an EMA baseline (baseline)",
    .license = "MIT",
    .option_count = sizeof enas_options / sizeof enas_options[0],
    .options = enas_options};

enum { E_ADAM_STEP, E_BASELINE, E_BASELINE_SET, E_STEP, E_SCALARS };

typedef struct enas {
    lth4sa_searcher_base_t base;  /* blob: params, adam m, adam v, scalars, last schemes (samples x L) */
    int64_t H, samples, nparams;
    double temperature, tanh_c, lr, decay, entropy;
    double *params, *m, *v, *scalars, *last;
    double *grad, *cache;  /* scratch: gradient; per step: token, h_prev, c_prev, i, f, g, o, c, h (8H), u (2), p_on */
} enas_t;

/* parameter blocks */
#define EMB(s) ((s)->params)                               /* [3, H]: start, off, on */
#define WX(s) (EMB(s) + 3 * (s)->H)                        /* [4H, H] */
#define WH(s) (WX(s) + 4 * (s)->H * (s)->H)                /* [4H, H] */
#define BG(s) (WH(s) + 4 * (s)->H * (s)->H)                /* [4H] */
#define WO(s) (BG(s) + 4 * (s)->H)                         /* [2, H] */
#define BO(s) (WO(s) + 2 * (s)->H)                         /* [2] */
#define STEP_CACHE(s, l) ((s)->cache + (l) * (8 * (s)->H + 4))

static double sigm(double x) { return 1 / (1 + exp(-x)); }

/* Runs step l with input token `token` (0 start, 1 off, 2 on) from (h_prev, c_prev) and caches
 * everything; returns p(on). */
static double enas_cell(enas_t *s, int64_t l, int token, const double *h_prev, const double *c_prev) {
    const int64_t H = s->H;
    double *k = STEP_CACHE(s, l);
    double *hp = k + 1, *cp = hp + H, *gi = cp + H, *gf = gi + H, *gg = gf + H, *go = gg + H, *c = go + H, *h = c + H;
    k[0] = token;
    memcpy(hp, h_prev, sizeof(double) * (size_t)H);
    memcpy(cp, c_prev, sizeof(double) * (size_t)H);
    const double *x = EMB(s) + token * H;
    for (int64_t r = 0; r < 4 * H; r++) {
        double z = BG(s)[r];
        for (int64_t j = 0; j < H; j++) z += WX(s)[r * H + j] * x[j] + WH(s)[r * H + j] * hp[j];
        gi[r] = z;  /* gi..go are contiguous: raw pre-activations first */
    }
    for (int64_t j = 0; j < H; j++) {
        gi[j] = sigm(gi[j]); gf[j] = sigm(gf[j]); gg[j] = tanh(gg[j]); go[j] = sigm(go[j]);
        c[j] = gf[j] * cp[j] + gi[j] * gg[j];
        h[j] = go[j] * tanh(c[j]);
    }
    double w[2];
    for (int q = 0; q < 2; q++) {
        double u = BO(s)[q];
        for (int64_t j = 0; j < H; j++) u += WO(s)[q * H + j] * h[j];
        w[q] = s->tanh_c * tanh(u / s->temperature);
        h[H + q] = u;  /* cache u after h */
    }
    return 1 / (1 + exp(w[0] - w[1]));
}

/* Runs the controller over `bits` (sampling them when `sample`), returns the per-block
 * probabilities of the chosen bits in pi (may be NULL). */
static void enas_unroll(enas_t *s, double *bits, int sample, double *pi) {
    const int64_t H = s->H, L = s->base.L;
    double *zeros = s->grad + s->nparams;  /* 2H zeros after the gradient */
    memset(zeros, 0, sizeof(double) * (size_t)(2 * H));
    const double *h = zeros, *c = zeros + H;
    int token = 0;
    for (int64_t l = 0; l < L; l++) {
        const double p_on = enas_cell(s, l, token, h, c);
        if (sample) bits[l] = lth4sa_draw(&s->base) < p_on;
        if (pi) pi[l] = bits[l] > 0.5 ? p_on : 1 - p_on;
        double *k = STEP_CACHE(s, l);
        k[8 * H + 3] = p_on;
        c = k + 1 + 6 * H;
        h = c + H;
        token = bits[l] > 0.5 ? 2 : 1;
    }
}

/* grad += d/dparams [coef * sum_l log pi(d_l) + entropy_coef * sum_l H(p_l)] for the unroll in the cache. */
static void enas_backward(enas_t *s, const double *bits, double coef, double entropy_coef) {
    const int64_t H = s->H, L = s->base.L;
    double *g = s->grad;
    double *gEmb = g, *gWx = gEmb + 3 * H, *gWh = gWx + 4 * H * H, *gB = gWh + 4 * H * H, *gWo = gB + 4 * H, *gBo = gWo + 2 * H;
    double *dh_next = s->grad + s->nparams, *dc_next = dh_next + H, *dz = dc_next + H;  /* scratch after the zeros */
    memset(dh_next, 0, sizeof(double) * (size_t)(2 * H));
    for (int64_t l = L - 1; l >= 0; l--) {
        double *k = STEP_CACHE(s, l);
        const int token = (int)k[0];
        double *hp = k + 1, *cp = hp + H, *gi = cp + H, *gf = gi + H, *gg = gf + H, *go = gg + H, *c = go + H, *h = c + H;
        const double p_on = k[8 * H + 3], on = bits[l] > 0.5;
        /* d/dw_on of log pi = on - p_on (d/dw_off = -that); entropy H = -sum p log p, dH/dw_on = -p_on p_off log(p_on/p_off) */
        const double p_off = 1 - p_on;
        const double dw_on = coef * (on - p_on) + entropy_coef * (-p_on * p_off * (log(fmax(p_on, 1e-12)) - log(fmax(p_off, 1e-12))));
        const double dw[2] = {-dw_on, dw_on};
        double dh[1024];
        for (int64_t j = 0; j < H; j++) dh[j] = dh_next[j];
        for (int q = 0; q < 2; q++) {
            const double t = tanh(h[H + q] / s->temperature);
            const double du = dw[q] * s->tanh_c * (1 - t * t) / s->temperature;
            gBo[q] += du;
            for (int64_t j = 0; j < H; j++) { gWo[q * H + j] += du * h[j]; dh[j] += du * WO(s)[q * H + j]; }
        }
        for (int64_t j = 0; j < H; j++) {
            const double tc = tanh(c[j]);
            const double dc = dc_next[j] + dh[j] * go[j] * (1 - tc * tc);
            dz[j] = dc * gg[j] * gi[j] * (1 - gi[j]);              /* i */
            dz[H + j] = dc * cp[j] * gf[j] * (1 - gf[j]);          /* f */
            dz[2 * H + j] = dc * gi[j] * (1 - gg[j] * gg[j]);      /* g */
            dz[3 * H + j] = dh[j] * tc * go[j] * (1 - go[j]);      /* o */
            dc_next[j] = dc * gf[j];
        }
        const double *x = EMB(s) + token * H;
        for (int64_t j = 0; j < H; j++) dh_next[j] = 0;
        for (int64_t r = 0; r < 4 * H; r++) {
            gB[r] += dz[r];
            for (int64_t j = 0; j < H; j++) {
                gWx[r * H + j] += dz[r] * x[j];
                gWh[r * H + j] += dz[r] * hp[j];
                gEmb[token * H + j] += dz[r] * WX(s)[r * H + j];
                dh_next[j] += dz[r] * WH(s)[r * H + j];
            }
        }
    }
}

static void enas_destroy(void *instance) {
    enas_t *s = instance;
    free(s->grad);
    free(s->cache);
    lth4sa_searcher_free(s);
}

static lth4sa_status_t enas_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                   void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "enas: the search space has no blocks");
    const int64_t H = (int64_t)lth4sa_option(o, n, "hidden", 32), L = space->blocks, samples = (int64_t)lth4sa_option(o, n, "samples", 1);
    const int64_t nparams = 3 * H + 8 * H * H + 4 * H + 2 * H + 2;
    enas_t *s = lth4sa_searcher_new(sizeof *s, host, "enas", space, (size_t)(3 * nparams + E_SCALARS + samples * 2 * L));
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "enas: out of memory (or more than 64 stages)");
    s->grad = calloc((size_t)(nparams + 6 * H), sizeof(double));
    s->cache = calloc((size_t)(L * (8 * H + 4)), sizeof(double));
    if (!s->grad || !s->cache) { enas_destroy(s); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "enas: out of memory"); }
    s->H = H;
    s->samples = samples;
    s->nparams = nparams;
    s->temperature = lth4sa_option(o, n, "temperature", 5);
    s->tanh_c = lth4sa_option(o, n, "tanh_constant", 2.5);
    s->lr = lth4sa_option(o, n, "lr", 0.005);
    s->decay = lth4sa_option(o, n, "baseline_decay", 0.95);
    s->entropy = lth4sa_option(o, n, "entropy", 0);
    s->params = s->base.blob;
    s->m = s->params + nparams;
    s->v = s->m + nparams;
    s->scalars = s->v + nparams;
    s->last = s->scalars + E_SCALARS;
    const double range = lth4sa_option(o, n, "init_range", 0.1);
    for (int64_t i = 0; i < nparams; i++) s->params[i] = (2 * lth4sa_draw(&s->base) - 1) * range;
    *instance = s;
    return LTH4SA_OK;
}

static lth4sa_status_t enas_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    enas_t *s = instance;
    const int64_t L = s->base.L;
    lth4sa_status_t room = lth4sa_check_room(&s->base, capacity, s->samples, error);
    if (room != LTH4SA_OK) return room;
    for (int64_t j = 0; j < s->samples; j++) {
        double *rec = s->last + j * 2 * L;  /* bits, then pi(d_l) */
        enas_unroll(s, rec, 1, rec + L);
        for (int64_t l = 0; l < L; l++) bits[j * L + l] = rec[l] > 0.5;
    }
    *count = (uint32_t)s->samples;
    return LTH4SA_OK;
}

static lth4sa_status_t enas_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                                 lth4sa_error_t *error) {
    enas_t *s = instance;
    const int64_t L = s->base.L;
    if ((int64_t)count != s->samples) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "enas: told %u scores for %lld schemes", count, (long long)s->samples);
    double mean = 0;
    for (uint32_t j = 0; j < count; j++) mean += scored[j].reward;
    mean /= count;
    if (s->scalars[E_BASELINE_SET] == 0) { s->scalars[E_BASELINE] = mean; s->scalars[E_BASELINE_SET] = 1; }
    else s->scalars[E_BASELINE] = s->decay * s->scalars[E_BASELINE] + (1 - s->decay) * mean;
    const double b = s->scalars[E_BASELINE];
    double p_bar = 0;
    for (int64_t l = 0; l < L; l++) p_bar += s->last[L + l];
    for (uint32_t j = 0; j < count; j++) {
        const double *rec = s->last + j * 2 * L;
        enas_unroll(s, (double *)rec, 0, NULL);
        /* minimising -(R - b) log pi - entropy*H: gradient of the loss = -(that) */
        enas_backward(s, rec, -(scored[j].reward - b) / count, -s->entropy / count);
    }
    lth4sa_adam_step(s->params, s->grad, s->m, s->v, &s->scalars[E_ADAM_STEP], s->nparams, s->lr);
    s->scalars[E_STEP] += 1;
    progress->p_bar = p_bar / (double)L;
    progress->baseline = b;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t enas_api = LTH4SA_BLOB_SEARCHER_API(enas_create, enas_destroy, enas_ask, enas_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(enas_descriptor, enas_api)
