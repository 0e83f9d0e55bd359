/* EAN: the policy-gradient searcher of the paper (METHOD.md section 4).
 *   controller: z = 0 (size `input`) -> Linear(input, hidden) -> ReLU -> Linear(hidden, 2L) logits;
 *               w = tanh_constant * tanh(logits / temperature); per block softmax over {off, on}
 *   each step: sample 1 + extra_samples schemes d_l ~ p_l; after the host scores them,
 *              b = EMA(mean reward) (decay, first value = first mean reward);
 *              minimise -mean_j (R_j - b) log pi(d_j) with Adam (lr);
 *   PPO reuse: keep the last `buffer` (scheme, reward, pi_old per block); from step
 *              `reuse_start` on, after each update draw one and minimise
 *              ppo_weight * -min(sum ratio*logpi*A, sum clip(ratio, 1-clip, 1+clip)*logpi*A), ratio detached;
 *   progress:  p_bar = mean_l pi(d_l) of the first scheme sampled this step.
 * All state lives in one array of doubles, so save/load are a copy. */
#include <lth4sa/searcher_helpers.h>

static const lth4sa_option_t ean_options[] = {
    {.name = "hidden", .type = LTH4SA_OPTION_INT, .default_value = 50, .min_value = 1, .max_value = 4096, .doc = "controller hidden units"},
    {.name = "input", .type = LTH4SA_OPTION_INT, .default_value = 20, .min_value = 1, .max_value = 4096, .doc = "size of the constant (zero) controller input"},
    {.name = "temperature", .type = LTH4SA_OPTION_FLOAT, .default_value = 5, .min_value = 1e-3, .max_value = 1e6, .doc = "logits are divided by this"},
    {.name = "tanh_constant", .type = LTH4SA_OPTION_FLOAT, .default_value = 2.5, .min_value = 1e-3, .max_value = 1e6, .doc = "then squashed to +-tanh_constant"},
    {.name = "lr", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.05, .min_value = 1e-8, .max_value = 10, .doc = "Adam learning rate of the controller"},
    {.name = "baseline_decay", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.95, .min_value = 0, .max_value = 1, .doc = "decay of the EMA reward baseline"},
    {.name = "extra_samples", .type = LTH4SA_OPTION_INT, .default_value = 0, .min_value = 0, .max_value = 1024, .doc = "k: schemes sampled per step besides the first"},
    {.name = "buffer", .type = LTH4SA_OPTION_INT, .default_value = 30, .min_value = 0, .max_value = 100000, .doc = "PPO reuse buffer size (0 = no reuse)"},
    {.name = "reuse_start", .type = LTH4SA_OPTION_INT, .default_value = 10, .min_value = 0, .max_value = 1000000, .doc = "first step with PPO data reuse"},
    {.name = "ppo_weight", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.1, .min_value = 0, .max_value = 100, .doc = "weight of the PPO reuse loss"},
    {.name = "clip", .type = LTH4SA_OPTION_FLOAT, .default_value = 0.1, .min_value = 0, .max_value = 1, .doc = "PPO ratio clip epsilon (ratio in [1-clip, 1+clip])"},
};

static const lth4sa_descriptor_t ean_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "ean",
    .name = "EAN policy-gradient searcher",
    .version = "1.0.0",
    .description = "REINFORCE controller with EMA baseline, RND-shaped rewards and PPO data reuse (the paper's method)",
    .license = "MIT",
    .option_count = sizeof ean_options / sizeof ean_options[0],
    .options = ean_options};

enum { S_ADAM_STEP, S_BASELINE, S_BASELINE_SET, S_STEP, S_BUF_COUNT, S_BUF_HEAD, S_LAST_COUNT, SCALARS };

typedef struct ean {
    lth4sa_searcher_base_t base;   /* base.blob: everything saved; the pointers below point into it */
    const lth4sa_host_t *host;
    int64_t L, H, I, samples, cap, reuse_start;
    double temperature, tanh_c, lr, decay, ppo_weight, clip;
    int64_t nparams;
    double *params, *adam_m, *adam_v, *scalars, *buffer, *last;
    double *grad, *probs, *u, *h;  /* scratch, not saved */
} ean_t;

/* parameter offsets */
#define W1(s) ((s)->params)
#define B1(s) ((s)->params + (s)->H * (s)->I)
#define W2(s) ((s)->params + (s)->H * (s)->I + (s)->H)
#define B2(s) ((s)->params + (s)->H * (s)->I + (s)->H + 2 * (s)->L * (s)->H)

/* p[l] = probability of "on" for every block, from the current parameters (z = 0). */
static void ean_policy(ean_t *s, double *p) {
    for (int64_t j = 0; j < s->H; j++) s->h[j] = B1(s)[j] > 0 ? B1(s)[j] : 0;  /* W1 z = 0 */
    for (int64_t k = 0; k < 2 * s->L; k++) {
        double acc = B2(s)[k];
        for (int64_t j = 0; j < s->H; j++) acc += W2(s)[k * s->H + j] * s->h[j];
        s->u[k] = acc;
    }
    for (int64_t l = 0; l < s->L; l++) {
        double off = s->tanh_c * tanh(s->u[2 * l] / s->temperature), on = s->tanh_c * tanh(s->u[2 * l + 1] / s->temperature);
        p[l] = 1.0 / (1.0 + exp(off - on));
    }
}

/* grad += coef * d/dparams sum_l c_l log pi(d_l), given p from ean_policy (u, h current). */
static void ean_accumulate(ean_t *s, const double *p, const double *bits, const double *c, double coef) {
    for (int64_t l = 0; l < s->L; l++) {
        const double on = bits[l] > 0.5 ? 1 : 0;
        const double dw_on = c[l] * (on - p[l]), dw_off = -dw_on;  /* d log pi / d w = onehot - softmax */
        const double dw[2] = {dw_off, dw_on};
        for (int k = 0; k < 2; k++) {
            const int64_t idx = 2 * l + k;
            const double t = tanh(s->u[idx] / s->temperature);
            const double du = coef * dw[k] * s->tanh_c * (1 - t * t) / s->temperature;
            double *gW2 = s->grad + s->H * s->I + s->H, *gb2 = gW2 + 2 * s->L * s->H, *gb1 = s->grad + s->H * s->I;
            gb2[idx] += du;
            for (int64_t j = 0; j < s->H; j++) {
                gW2[idx * s->H + j] += du * s->h[j];
                if (s->h[j] > 0) gb1[j] += du * W2(s)[idx * s->H + j];  /* dW1 = dh z^T = 0 */
            }
        }
    }
}

static void ean_adam(ean_t *s) {
    lth4sa_adam_step(s->params, s->grad, s->adam_m, s->adam_v, &s->scalars[S_ADAM_STEP], s->nparams, s->lr);
}

static lth4sa_status_t ean_create(const lth4sa_host_t *host, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                  void **instance, lth4sa_error_t *error) {
    if (space->blocks < 1) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "ean: the search space has no blocks");
    const int64_t L = space->blocks, H = (int64_t)lth4sa_option(o, n, "hidden", 50), I = (int64_t)lth4sa_option(o, n, "input", 20);
    const int64_t samples = 1 + (int64_t)lth4sa_option(o, n, "extra_samples", 0), cap = (int64_t)lth4sa_option(o, n, "buffer", 30);
    const int64_t nparams = H * I + H + 2 * L * H + 2 * L;
    /* blob: params, adam m, adam v, scalars, buffer (cap x (bits, reward, pi_old)), last samples (bits, pi_old) */
    ean_t *s = lth4sa_searcher_new(sizeof *s, host, "ean", space, (size_t)(3 * nparams + SCALARS + cap * (2 * L + 1) + samples * 2 * L));
    if (!s) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "ean: out of memory (or more than 64 stages)");
    s->host = host;
    s->L = L;
    s->H = H;
    s->I = I;
    s->temperature = lth4sa_option(o, n, "temperature", 5);
    s->tanh_c = lth4sa_option(o, n, "tanh_constant", 2.5);
    s->lr = lth4sa_option(o, n, "lr", 0.05);
    s->decay = lth4sa_option(o, n, "baseline_decay", 0.95);
    s->samples = samples;
    s->cap = cap;
    s->reuse_start = (int64_t)lth4sa_option(o, n, "reuse_start", 10);
    s->ppo_weight = lth4sa_option(o, n, "ppo_weight", 0.1);
    s->clip = lth4sa_option(o, n, "clip", 0.1);
    s->nparams = nparams;
    const int64_t entry = 2 * s->L + 1;  /* bits, reward, pi_old per block */
    s->grad = calloc((size_t)s->nparams, sizeof(double));
    s->probs = calloc((size_t)s->L, sizeof(double));
    s->u = calloc((size_t)(2 * s->L), sizeof(double));
    s->h = calloc((size_t)s->H, sizeof(double));
    if (!s->grad || !s->probs || !s->u || !s->h) {
        free(s->grad); free(s->probs); free(s->u); free(s->h); lth4sa_searcher_free(s);
        return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "ean: out of memory");
    }
    s->params = s->base.blob;
    s->adam_m = s->params + s->nparams;
    s->adam_v = s->adam_m + s->nparams;
    s->scalars = s->adam_v + s->nparams;
    s->buffer = s->scalars + SCALARS;
    s->last = s->buffer + s->cap * entry;
    /* PyTorch nn.Linear default init, drawn from the host's seeded generator */
    const double bound1 = 1 / sqrt((double)s->I), bound2 = 1 / sqrt((double)s->H);
    for (int64_t i = 0; i < s->H * s->I + s->H; i++) s->params[i] = (2 * host->uniform(host->context) - 1) * bound1;
    for (int64_t i = s->H * s->I + s->H; i < s->nparams; i++) s->params[i] = (2 * host->uniform(host->context) - 1) * bound2;
    *instance = s;
    return LTH4SA_OK;
}

static void ean_destroy(void *instance) {
    ean_t *s = instance;
    free(s->grad); free(s->probs); free(s->u); free(s->h);
    lth4sa_searcher_free(s);
}

static lth4sa_status_t ean_ask(void *instance, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *error) {
    ean_t *s = instance;
    lth4sa_status_t room = lth4sa_check_room(&s->base, capacity, s->samples, error);
    if (room != LTH4SA_OK) return room;
    ean_policy(s, s->probs);
    for (int64_t j = 0; j < s->samples; j++) {
        double *rec = s->last + j * 2 * s->L;
        for (int64_t l = 0; l < s->L; l++) {
            const int on = s->host->uniform(s->host->context) < s->probs[l];
            bits[j * s->L + l] = (uint8_t)on;
            rec[l] = on;
            rec[s->L + l] = on ? s->probs[l] : 1 - s->probs[l];  /* pi_old(d_l) */
        }
    }
    s->scalars[S_LAST_COUNT] = (double)s->samples;
    *count = (uint32_t)s->samples;
    return LTH4SA_OK;
}

static lth4sa_status_t ean_tell(void *instance, const lth4sa_scored_scheme_t *scored, uint32_t count, lth4sa_searcher_progress_t *progress,
                                lth4sa_error_t *error) {
    ean_t *s = instance;
    if ((double)count != s->scalars[S_LAST_COUNT]) return lth4sa_fail(error, LTH4SA_ERR_INVALID_ARGUMENT, "ean: told %u scores for %g schemes", count, s->scalars[S_LAST_COUNT]);
    double mean = 0;
    for (uint32_t j = 0; j < count; j++) mean += scored[j].reward;
    mean /= count;
    if (s->scalars[S_BASELINE_SET] == 0) { s->scalars[S_BASELINE] = mean; s->scalars[S_BASELINE_SET] = 1; }
    else s->scalars[S_BASELINE] = s->decay * s->scalars[S_BASELINE] + (1 - s->decay) * mean;
    const double b = s->scalars[S_BASELINE];
    double p_bar = 0;
    for (int64_t l = 0; l < s->L; l++) p_bar += s->last[s->L + l];
    p_bar /= (double)s->L;
    /* REINFORCE: minimise -mean_j (R_j - b) log pi(d_j) */
    ean_policy(s, s->probs);
    double *ones = calloc((size_t)s->L, sizeof(double));
    if (!ones) return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "ean: out of memory");
    for (int64_t l = 0; l < s->L; l++) ones[l] = 1;
    for (uint32_t j = 0; j < count; j++) ean_accumulate(s, s->probs, s->last + j * 2 * s->L, ones, -(scored[j].reward - b) / count);
    ean_adam(s);
    /* PPO reuse of one buffered sample */
    const int64_t entry = 2 * s->L + 1;
    if (s->cap > 0 && s->scalars[S_STEP] >= (double)s->reuse_start && s->scalars[S_BUF_COUNT] > 0) {
        const int64_t pick = (int64_t)(s->host->uniform(s->host->context) * s->scalars[S_BUF_COUNT]) % (int64_t)s->scalars[S_BUF_COUNT];
        const double *e = s->buffer + pick * entry;
        const double A = e[s->L] - b;
        ean_policy(s, s->probs);
        double *ratio = calloc((size_t)s->L, sizeof(double)), *clipped = calloc((size_t)s->L, sizeof(double));
        if (!ratio || !clipped) { free(ratio); free(clipped); free(ones); return lth4sa_fail(error, LTH4SA_ERR_OUT_OF_MEMORY, "ean: out of memory"); }
        double s1 = 0, s2 = 0;
        for (int64_t l = 0; l < s->L; l++) {
            const double pnew = e[l] > 0.5 ? s->probs[l] : 1 - s->probs[l];
            ratio[l] = pnew / fmax(e[s->L + 1 + l], 1e-12);
            clipped[l] = fmin(fmax(ratio[l], 1 - s->clip), 1 + s->clip);
            s1 += ratio[l] * log(fmax(pnew, 1e-12)) * A;
            s2 += clipped[l] * log(fmax(pnew, 1e-12)) * A;
        }
        ean_accumulate(s, s->probs, e, s1 <= s2 ? ratio : clipped, -s->ppo_weight * A);
        ean_adam(s);
        free(ratio);
        free(clipped);
    }
    free(ones);
    /* push this step's samples: bits, reward, pi_old per block */
    for (uint32_t j = 0; j < count && s->cap > 0; j++) {
        double *e = s->buffer + (int64_t)s->scalars[S_BUF_HEAD] * entry;
        const double *rec = s->last + j * 2 * s->L;
        for (int64_t l = 0; l < s->L; l++) { e[l] = rec[l]; e[s->L + 1 + l] = rec[s->L + l]; }
        e[s->L] = scored[j].reward;
        s->scalars[S_BUF_HEAD] = (double)(((int64_t)s->scalars[S_BUF_HEAD] + 1) % s->cap);
        if (s->scalars[S_BUF_COUNT] < (double)s->cap) s->scalars[S_BUF_COUNT] += 1;
    }
    s->scalars[S_STEP] += 1;
    progress->p_bar = p_bar;
    progress->baseline = b;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t ean_api = LTH4SA_BLOB_SEARCHER_API(ean_create, ean_destroy, ean_ask, ean_tell);

LTH4SA_SINGLE_SEARCHER_ENTRY(ean_descriptor, ean_api)
