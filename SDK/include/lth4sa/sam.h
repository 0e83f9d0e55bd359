/* The SAM (self-attention module) interface, "lth4sa.sam/1".
 *
 * A SAM attached to a residual block turns the branch F (NHWC, B x H x W x C) into F'
 * (x_{l+1} = ReLU(S(x) + F')) in three stages, each with its backward:
 *
 *   extract:      F            -> S        (default when NULL: global average pool, S = [B, C])
 *   process:      F, S, state  -> A, state (the attention; required)
 *   recalibrate:  F, A         -> F'       (default when NULL: F * A or F + A, broadcast, by
 *                                           `combine`; A's channel dim may be G | C, each
 *                                           attention channel covering C/G consecutive channels)
 *
 * Instances. One instance = one set of parameters. The host may call one instance at several
 * blocks in one forward (Full-Share): every call carries a `call` slot (0, 1, ... in forward
 * order); the plugin keeps what backward needs per slot and must accumulate (+=) parameter
 * gradients over calls. Backward calls come in reverse slot order. With `training == 0` the
 * forward is the inference path: nothing is saved and no backward follows.
 *
 * State. A SAM that declares `state_count > 0` (DIA) receives the state of the previous
 * connected block of the same stage (all zeros at the first) and writes its own; the host
 * carries it, skips unconnected blocks (their state passes unchanged), and runs the state
 * gradients backward in reverse block order.
 *
 * Parameters are owned by the host: the plugin declares them (PyTorch names, shapes, an
 * initialisation rule), the host allocates values and gradients, initialises them and binds
 * them; optimizers, weight decay and checkpoints treat them like any other parameter.
 *
 * Buffers (appended to the table; optional): non-trainable tensors a SAM keeps for itself, e.g.
 * the running statistics of a batch norm inside it (coordinate attention). Owned by the host like
 * parameters and declared the same way (`buffer_info` fills an `lth4sa_param_t`): the host
 * allocates and initialises them, binds them with `bind_buffers`, saves them in checkpoints under
 * their PyTorch names (`bn1.running_mean`), restores them on resume, averages the float ones over
 * data-parallel ranks and batch-norm groups, and keeps them out of the optimizer (no gradient, no
 * weight decay). The plugin reads them in every forward and updates them only in a forward with
 * `training != 0`, once per call as the PyTorch module would at that call; an inference forward
 * leaves them unchanged.
 *
 * Threading: an instance is used by one thread at a time; different instances may run
 * concurrently. Plugins may use `host->parallel_for` inside a call. A plugin whose descriptor
 * declares LTH4SA_PLUGIN_CONCURRENT_INSTANCES (descriptor.h) may also have an instance driven
 * from a thread other than the one that created it (the host's lanes). */
#ifndef LTH4SA_SAM_H
#define LTH4SA_SAM_H

#include "base.h"
#include "host.h"
#include "tensor.h"
#include "descriptor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LTH4SA_SAM_INTERFACE "lth4sa.sam/1"

/* Initialisation rules for declared parameters. */
#define LTH4SA_INIT_ZEROS 0
#define LTH4SA_INIT_ONES 1
#define LTH4SA_INIT_CONSTANT 2 /* every element = a */
#define LTH4SA_INIT_UNIFORM 3  /* U(a, b) */
#define LTH4SA_INIT_NORMAL 4   /* N(mean a, std b) */
#define LTH4SA_INIT_LINEAR 5   /* PyTorch nn.Linear default: U(-1/sqrt(a), 1/sqrt(a)), a = fan_in */
#define LTH4SA_INIT_COUNTER 6  /* buffers only: zeros, an integer count (held as float, exact to 2^24) that
                                  checkpoints store as int64, like PyTorch's `num_batches_tracked` */

/** One declared parameter. `name` is owned by the instance and valid until `destroy` [instance].
 *  FROZEN (array element): never changes size or layout. */
typedef struct lth4sa_param {
    const char *LTH4SA_NONNULL name; /* PyTorch-style, e.g. "fc1.weight" */
    int32_t ndim;
    int32_t init;                    /* LTH4SA_INIT_* */
    int64_t shape[4];
    double init_a, init_b;
} lth4sa_param_t;

#define LTH4SA_COMBINE_MULTIPLY 0u /* F' = F * A */
#define LTH4SA_COMBINE_ADD 1u      /* F' = F + A (e.g. GC) */

/* Layout flags (append-only). */
/** `process` and `process_backward` never read the input F (they read S and the state only)
 *  and never write d_input: A depends on F through S alone. The host may then compute S
 *  without forming F (inference: from the input of the 1x1 convolution that makes F; training:
 *  from the statistics of the batch norm that makes it) and pass an input view of F's shape
 *  whose data are read-only zeros, and a d_input whose contents it ignores. A plugin that sets
 *  it and reads F or writes d_input computes wrong attentions or gradients (`lth4sa plugins
 *  check` reports it). */
#define LTH4SA_SAM_PROCESS_IGNORES_INPUT 1u

/** Shapes of the intermediate tensors for one input shape (filled by `layout`).
 *  The host sets `struct_size` to the size it knows before calling `layout`; the plugin
 *  writes only fields that fit in it (0: a host older than `flags`, which ends after
 *  `state_shape`) and leaves `struct_size` at what it wrote (`lth4sa_base_layout` does this). */
typedef struct lth4sa_sam_layout {
    uint32_t struct_size;
    uint32_t combine;             /* LTH4SA_COMBINE_* for the default recalibrate */
    int32_t extract_ndim;         /* S: [B, C] for the default extract */
    int32_t attention_ndim;       /* A: 4, NHWC, broadcast against F */
    int64_t extract_shape[4];
    int64_t attention_shape[4];
    uint32_t state_count;         /* 0 = stateless; DIA: 2 (h, c) */
    int32_t state_ndim;
    int64_t state_shape[4];       /* every state tensor has this shape */
    uint32_t flags;               /* LTH4SA_SAM_* flags (appended: check struct_size) */
} lth4sa_sam_layout_t;

typedef struct lth4sa_sam_api {
    uint32_t struct_size;
    uint32_t reserved;

    /** Creates an instance for `channels` with every declared option. Fails with
     *  LTH4SA_ERR_UNSUPPORTED for impossible configurations. `host` stays valid until
     *  `destroy` and may be kept; `options` only during the call. [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL create)(const lth4sa_host_t *LTH4SA_NONNULL host, int64_t channels,
                                             const lth4sa_option_value_t *LTH4SA_NULLABLE options, uint32_t option_count,
                                             void *LTH4SA_NULLABLE *LTH4SA_NONNULL instance, lth4sa_error_t *LTH4SA_NONNULL error);
    /** Frees the instance and everything it owns. [main thread] */
    void (*LTH4SA_NONNULL destroy)(void *LTH4SA_NONNULL instance);

    /** Number of parameters. [any thread] */
    uint32_t (*LTH4SA_NONNULL param_count)(void *LTH4SA_NONNULL instance);
    /** Declaration `index` (< param_count) into `out`; its name is [instance]. [any thread] */
    lth4sa_status_t (*LTH4SA_NONNULL param_info)(void *LTH4SA_NONNULL instance, uint32_t index,
                                                 lth4sa_param_t *LTH4SA_NONNULL out, lth4sa_error_t *LTH4SA_NONNULL error);
    /** Hands the host-owned values and gradients (in declaration order). The views stay valid
     *  until the next `bind` or `destroy`; the plugin reads values and accumulates into grads.
     *  [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL bind)(void *LTH4SA_NONNULL instance, const lth4sa_tensor_t *LTH4SA_NONNULL values,
                                           const lth4sa_tensor_t *LTH4SA_NONNULL grads, uint32_t count,
                                           lth4sa_error_t *LTH4SA_NONNULL error);
    /** Intermediate shapes for an input of `input->shape` (data may be NULL). [any thread] */
    lth4sa_status_t (*LTH4SA_NONNULL layout)(void *LTH4SA_NONNULL instance, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                             lth4sa_sam_layout_t *LTH4SA_NONNULL out, lth4sa_error_t *LTH4SA_NONNULL error);

    /** S = extract(F). NULL: global average pooling. [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE extract)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                               lth4sa_tensor_t *LTH4SA_NONNULL extracted, int32_t training, lth4sa_error_t *LTH4SA_NONNULL error);
    /** dF += d extract / dF . dS. NULL: the GAP backward. [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE extract_backward)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                                        const lth4sa_tensor_t *LTH4SA_NONNULL d_extracted, lth4sa_tensor_t *LTH4SA_NONNULL d_input,
                                                        lth4sa_error_t *LTH4SA_NONNULL error);

    /** A, state_out = process(F, S, state_in). `state_in`/`state_out` point to `state_count`
     *  views each (NULL when stateless); state_in is all zeros at a stage's first block. [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL process)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                              const lth4sa_tensor_t *LTH4SA_NONNULL extracted, const lth4sa_tensor_t *LTH4SA_NULLABLE state_in,
                                              lth4sa_tensor_t *LTH4SA_NONNULL attention, lth4sa_tensor_t *LTH4SA_NULLABLE state_out,
                                              int32_t training, lth4sa_error_t *LTH4SA_NONNULL error);
    /** Given dA and d state_out (zeros after a stage's last block): writes dS and d state_in,
     *  accumulates dF (+=, only SAMs whose process reads F) and parameter gradients (+=).
     *  `input` and `extracted` are the views of the matching forward call (still valid).
     *  [main thread] */
    lth4sa_status_t (*LTH4SA_NONNULL process_backward)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                                       const lth4sa_tensor_t *LTH4SA_NONNULL extracted, const lth4sa_tensor_t *LTH4SA_NONNULL d_attention,
                                                       const lth4sa_tensor_t *LTH4SA_NULLABLE d_state_out, lth4sa_tensor_t *LTH4SA_NONNULL d_extracted,
                                                       lth4sa_tensor_t *LTH4SA_NULLABLE d_state_in, lth4sa_tensor_t *LTH4SA_NONNULL d_input,
                                                       lth4sa_error_t *LTH4SA_NONNULL error);

    /** F' = recalibrate(F, A). NULL: the `combine` rule. [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE recalibrate)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                                   const lth4sa_tensor_t *LTH4SA_NONNULL attention, lth4sa_tensor_t *LTH4SA_NONNULL output,
                                                   lth4sa_error_t *LTH4SA_NONNULL error);
    /** Writes dF (from the recalibration only) and dA. NULL: backward of the `combine` rule.
     *  [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE recalibrate_backward)(void *LTH4SA_NONNULL instance, int32_t call, const lth4sa_tensor_t *LTH4SA_NONNULL input,
                                                            const lth4sa_tensor_t *LTH4SA_NONNULL attention, const lth4sa_tensor_t *LTH4SA_NONNULL d_output,
                                                            lth4sa_tensor_t *LTH4SA_NONNULL d_input, lth4sa_tensor_t *LTH4SA_NONNULL d_attention,
                                                            lth4sa_error_t *LTH4SA_NONNULL error);

    /* Appended (the host reads them only when `struct_size` covers them; a table built with an
     * older header simply lacks them). */

    /** Optional (NULL: allocate on demand). Sizes the instance for call slots `call` <
     *  `calls`, batches of at most `max_batch` images and `height` x `width` maps. The host
     *  calls it after `bind` and before the first `extract`/`process`, and again whenever one
     *  of the four grows; the SAM allocates here everything its `extract`, `process`,
     *  `recalibrate` and their backward calls need, so that those never allocate (CLAP's
     *  `activate`). [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE prepare)(void *LTH4SA_NONNULL instance, int32_t calls, int64_t max_batch, int64_t height,
                                               int64_t width, lth4sa_error_t *LTH4SA_NONNULL error);
    /** Optional (NULL: not reported). Heap allocations the instance has made since it was
     *  created; the conformance kit checks that calls after `prepare` add none. [any thread] */
    uint64_t (*LTH4SA_NULLABLE allocations)(void *LTH4SA_NONNULL instance);

    /** Optional (NULL: no buffers). Number of buffers (see "Buffers" above). [any thread] */
    uint32_t (*LTH4SA_NULLABLE buffer_count)(void *LTH4SA_NONNULL instance);
    /** Declaration of buffer `index` (< buffer_count) into `out`, like `param_info` (init rules
     *  ZEROS, ONES, CONSTANT or COUNTER; `ndim` 0 declares a scalar, e.g. a counter); its name
     *  is [instance] and differs from every parameter name. Required when `buffer_count`
     *  returns more than 0. [any thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE buffer_info)(void *LTH4SA_NONNULL instance, uint32_t index, lth4sa_param_t *LTH4SA_NONNULL out,
                                                   lth4sa_error_t *LTH4SA_NONNULL error);
    /** Hands the host-owned buffers (declaration order), after `bind` and before the first
     *  forward. The views stay valid until the next `bind_buffers` or `destroy`; the plugin
     *  reads them and writes them only in training forwards. Required when `buffer_count`
     *  returns more than 0. [main thread] */
    lth4sa_status_t (*LTH4SA_NULLABLE bind_buffers)(void *LTH4SA_NONNULL instance, const lth4sa_tensor_t *LTH4SA_NONNULL values,
                                                    uint32_t count, lth4sa_error_t *LTH4SA_NONNULL error);
} lth4sa_sam_api_t;

#ifdef __cplusplus
}
#endif
#endif
