/* Finite-difference check of the ENAS controller's backpropagation through time: compares
 * d/dparams [sum_l log pi(d_l) + 0.3 * sum_l H(p_l)] from enas_backward with central differences
 * (step 1e-6, double precision) for every parameter of a small controller (hidden 5, 12 blocks).
 * Prints the worst relative error; exits 1 when it exceeds 1e-3 (a wrong gradient is off by far more; the bug this caught gave 20). Built and run by the tests. */
#include "../../Plugins/ENAS/enas.c"

static unsigned long long state = 88172645463325252ull;
static float uniform(void *context) {
    (void)context;
    state ^= state << 13; state ^= state >> 7; state ^= state << 17;
    return (float)((state >> 40) / 16777216.0);
}

static double objective(enas_t *s, double *bits) {
    double pi[12], v = 0;
    enas_unroll(s, bits, 0, pi);
    for (int l = 0; l < 12; l++) {
        const double p = STEP_CACHE(s, l)[8 * s->H + 3];
        v += log(pi[l]) + 0.3 * -(p * log(p) + (1 - p) * log(1 - p));
    }
    return v;
}

int main(void) {
    lth4sa_host_t host;
    memset(&host, 0, sizeof host);
    host.uniform = uniform;
    uint32_t sizes[3] = {4, 4, 4};
    lth4sa_search_space_t space;
    memset(&space, 0, sizeof space);
    space.blocks = 12;
    space.stage_count = 3;
    space.stage_sizes = sizes;
    lth4sa_option_value_t options[2] = {{"hidden", 5}, {"init_range", 0.5}};
    void *instance;
    lth4sa_error_t error;
    if (enas_create(&host, &space, options, 2, &instance, &error) != LTH4SA_OK) return 2;
    enas_t *s = instance;
    double bits[12] = {1, 0, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1};
    objective(s, bits);
    memset(s->grad, 0, sizeof(double) * (size_t)s->nparams);
    enas_backward(s, bits, 1.0, 0.3);
    double *analytic = malloc(sizeof(double) * (size_t)s->nparams), worst = 0;
    memcpy(analytic, s->grad, sizeof(double) * (size_t)s->nparams);
    for (int64_t i = 0; i < s->nparams; i++) {
        const double old = s->params[i];
        s->params[i] = old + 1e-6;
        const double up = objective(s, bits);
        s->params[i] = old - 1e-6;
        const double down = objective(s, bits);
        s->params[i] = old;
        const double numeric = (up - down) / 2e-6, e = fabs(numeric - analytic[i]) / (fabs(numeric) + 1e-6);
        if (e > worst) worst = e;
    }
    printf("%g\n", worst);
    free(analytic);
    enas_destroy(s);
    return worst > 1e-3 ? 1 : 0;
}
