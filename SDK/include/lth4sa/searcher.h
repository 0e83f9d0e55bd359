/* The searcher interface, "lth4sa.searcher/1": a plugin that proposes connection schemes.
 *
 * The host drives the loop (ask/tell), so progress, budget, logging and checkpoints are the
 * same for every searcher: each step the host asks for schemes, scores every one with the
 * same reward (accuracy of the sub-network in the supernet, sparsity, RND curiosity; see
 * METHOD.md section 4) and tells the scores back with their parts. The host keeps the best
 * schemes itself. A scheme is `blocks` bytes, 0 or 1, block 0 first.
 *
 * State: the host saves a searcher with `save` (into a buffer of `state_size` bytes) and
 * restores it with `load`, so a killed search resumes where it stopped; draw random numbers
 * only through `host->uniform` (the host saves that generator too) for resumes to be exact.
 *
 * Threading: an instance is used by one thread at a time. */
#ifndef LTH4SA_SEARCHER_H
#define LTH4SA_SEARCHER_H

#include "base.h"
#include "descriptor.h"
#include "host.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LTH4SA_SEARCHER_INTERFACE "lth4sa.searcher/1"

/** Host capability "lth4sa.host.scheme_cost/1": the parameter count of a scheme's network. */
#define LTH4SA_HOST_SCHEME_COST "lth4sa.host.scheme_cost/1"
typedef struct lth4sa_scheme_cost_api {
    uint32_t struct_size;
    uint32_t reserved;
    /** Parameters of the network with `bits` (blocks bytes). [calling thread] */
    int64_t (*LTH4SA_NONNULL parameters)(void *LTH4SA_NULLABLE context, const uint8_t *LTH4SA_NONNULL bits);
} lth4sa_scheme_cost_api_t;

/** Host capability "lth4sa.host.sam_parameters/1": the trained supernet's SAM parameters per
 *  block (for pruning baselines such as L1 and GM). Blocks sharing an instance (Full-Share)
 *  report the same values. */
#define LTH4SA_HOST_SAM_PARAMETERS "lth4sa.host.sam_parameters/1"
typedef struct lth4sa_sam_parameters_api {
    uint32_t struct_size;
    uint32_t reserved;
    /** Number of SAM parameter values at `block` (0 when it has none). [calling thread] */
    int64_t (*LTH4SA_NONNULL count)(void *LTH4SA_NULLABLE context, uint32_t block);
    /** Copies them (declaration order, flattened) into `out` (room for `capacity` floats);
     *  returns how many were copied. [calling thread] */
    int64_t (*LTH4SA_NONNULL copy)(void *LTH4SA_NULLABLE context, uint32_t block, float *LTH4SA_NONNULL out, int64_t capacity);
} lth4sa_sam_parameters_api_t;

/** Host capability "lth4sa.host.gate_gradients/1": continuous gates on the supernet's SAMs, for
 *  differentiable searchers such as DARTS (METHOD.md section 5). With gate w_l in [0, 1] block l
 *  computes  F' = w_l * SAM(F) + (1 - w_l) * F  (for a multiplicative SAM: F * (w_l * A + 1 - w_l)).
 *  The host works on its own copy of the trained supernet, so the supernet other searchers
 *  score schemes with is never changed. Both calls return NaN when the host fails (the reason
 *  is reported by the host). */
#define LTH4SA_HOST_GATE_GRADIENTS "lth4sa.host.gate_gradients/1"
typedef struct lth4sa_gate_gradients_api {
    uint32_t struct_size;
    uint32_t reserved;
    /** One SGD step of the network weights on the next mini-batch of the sub-training set with
     *  `gates` (blocks values in [0, 1]); returns that batch's training loss. [calling thread] */
    double (*LTH4SA_NONNULL train_weights)(void *LTH4SA_NULLABLE context, const double *LTH4SA_NONNULL gates);
    /** The loss on the next mini-batch of the validation set with `gates`, and its gradient
     *  dLoss/dgate_l written into `gradient` (blocks values); weights are not changed. [calling thread] */
    double (*LTH4SA_NONNULL validation_gradient)(void *LTH4SA_NULLABLE context, const double *LTH4SA_NONNULL gates,
                                                 double *LTH4SA_NONNULL gradient);
} lth4sa_gate_gradients_api_t;

/** What is searched: `blocks` bits grouped in stages. [call] (borrowed for `create`). */
typedef struct lth4sa_search_space {
    uint32_t struct_size;
    uint32_t blocks;                                   /* L */
    uint32_t stage_count;
    uint32_t reserved;
    const uint32_t *LTH4SA_NONNULL stage_sizes;        /* stage_count entries summing to L */
    /** Optional host capabilities by versioned id (e.g. LTH4SA_HOST_SCHEME_COST), or NULL when
     *  the host does not offer it. The returned table lives as long as the instance. [calling thread] */
    const void *LTH4SA_NULLABLE (*LTH4SA_NONNULL host_extension)(void *LTH4SA_NULLABLE context, const char *LTH4SA_NONNULL id);
    void *LTH4SA_NULLABLE extension_context;           /* pass back to host_extension and capability calls */
} lth4sa_search_space_t;

/** One scored scheme as told back to the searcher. [call]
 *  FROZEN (array element): never changes size or layout. */
typedef struct lth4sa_scored_scheme {
    const uint8_t *LTH4SA_NONNULL bits; /* blocks bytes, borrowed for the call */
    double reward;                      /* the composed reward the searcher maximises */
    double accuracy;                    /* validation accuracy of the sub-network, percent */
    double sparsity;                    /* 1 - |d|_0 / L */
    double curiosity;                   /* RND term */
} lth4sa_scored_scheme_t;

/** What a searcher reports after a step (fields it has no notion of are NaN). */
typedef struct lth4sa_searcher_progress {
    uint32_t struct_size;
    uint32_t reserved;
    double p_bar;     /* mean probability the policy gave the sampled bits (convergence, METHOD.md 4) */
    double baseline;  /* e.g. the EMA reward baseline */
} lth4sa_searcher_progress_t;

typedef struct lth4sa_searcher_api {
    uint32_t struct_size;
    uint32_t reserved;

    /** Creates a searcher for `space` with every declared option. [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL create)(const lth4sa_host_t *LTH4SA_NONNULL host, const lth4sa_search_space_t *LTH4SA_NONNULL space,
                                             const lth4sa_option_value_t *LTH4SA_NULLABLE options, uint32_t option_count,
                                             void *LTH4SA_NULLABLE *LTH4SA_NONNULL instance, lth4sa_error_t *LTH4SA_NONNULL error);
    /** Frees the instance and everything it owns. [main thread] */
    void (*LTH4SA_NONNULL destroy)(void *LTH4SA_NONNULL instance);

    /** Writes the schemes of this step into `bits` (`capacity` * blocks bytes) and their
     *  number (1..capacity) into `count`. [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL ask)(void *LTH4SA_NONNULL instance, uint8_t *LTH4SA_NONNULL bits, uint32_t capacity,
                                          uint32_t *LTH4SA_NONNULL count, lth4sa_error_t *LTH4SA_NONNULL error);
    /** The scores of the last ask, in its order; the searcher updates itself and reports.
     *  [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL tell)(void *LTH4SA_NONNULL instance, const lth4sa_scored_scheme_t *LTH4SA_NONNULL scored, uint32_t count,
                                           lth4sa_searcher_progress_t *LTH4SA_NONNULL progress, lth4sa_error_t *LTH4SA_NONNULL error);

    /** Bytes needed by `save` now. [main thread] */
    uint64_t (*LTH4SA_NONNULL state_size)(void *LTH4SA_NONNULL instance);
    /** Serialises the whole searcher state into `buffer` (`size` bytes, from state_size). [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL save)(void *LTH4SA_NONNULL instance, void *LTH4SA_NONNULL buffer, uint64_t size,
                                           lth4sa_error_t *LTH4SA_NONNULL error);
    /** Restores a state written by `save` of an instance created with the same space and options.
     *  [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL load)(void *LTH4SA_NONNULL instance, const void *LTH4SA_NONNULL buffer, uint64_t size,
                                           lth4sa_error_t *LTH4SA_NONNULL error);
} lth4sa_searcher_api_t;

#ifdef __cplusplus
}
#endif
#endif
