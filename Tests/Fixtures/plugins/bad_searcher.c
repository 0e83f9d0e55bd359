/* A searcher that breaks the ask/save contracts, one way per build flag: bytes other than 0/1
 * (-DBAD_BITS), bytes past the buffer it was given (-DASK_OVERRUN), a scheme one byte short
 * (-DSHORT_SCHEME) or long (-DLONG_SCHEME), every scheme of the buffer one byte long
 * (-DWRONGLEN_MULTI), a write megabytes past the buffer (-DFAR_OVERRUN), an absurd state size
 * (-DHUGE_STATE) or a save past its buffer (-DSAVE_OVERRUN). The host must refuse each. */
#include <lth4sa/helpers.h>
#include <stdlib.h>

static const lth4sa_descriptor_t bad_descriptor = {
    .struct_size = sizeof(lth4sa_descriptor_t), .kind = LTH4SA_KIND_SEARCHER, .id = "badsearcher", .name = "Bad searcher",
    .version = "0.1.0", .description = "breaks the searcher contracts", .license = "MIT"};

typedef struct bad { uint32_t blocks; } bad_t;

static lth4sa_status_t bad_create(const lth4sa_host_t *h, const lth4sa_search_space_t *space, const lth4sa_option_value_t *o, uint32_t n,
                                  void **out, lth4sa_error_t *e) {
    (void)h; (void)o; (void)n;
    bad_t *b = calloc(1, sizeof *b);
    if (!b) return lth4sa_fail(e, LTH4SA_ERR_OUT_OF_MEMORY, "badsearcher: out of memory");
    b->blocks = space->blocks;
    *out = b;
    return LTH4SA_OK;
}
static void bad_destroy(void *i) { free(i); }
static lth4sa_status_t bad_ask(void *i, uint8_t *bits, uint32_t capacity, uint32_t *count, lth4sa_error_t *e) {
    (void)e;
    bad_t *b = i;
    memset(bits, 1, b->blocks);
#if defined(BAD_BITS)
    bits[0] = 2;
#elif defined(ASK_OVERRUN)
    memset(bits, 1, (size_t)capacity * b->blocks + 3);
#elif defined(SHORT_SCHEME)
    memset(bits, 0xA5, b->blocks);
    memset(bits, 0, b->blocks - 1);
#elif defined(LONG_SCHEME)
    memset(bits, 0, b->blocks + 1);
#elif defined(WRONGLEN_MULTI)
    memset(bits, 1, (size_t)capacity * (b->blocks + 1)); /* every scheme one byte too long */
#elif defined(FAR_OVERRUN)
    memset(bits, 1, (size_t)capacity * b->blocks * 4 + (1u << 21));
#endif
    (void)capacity;
    *count = 1;
    return LTH4SA_OK;
}
static lth4sa_status_t bad_tell(void *i, const lth4sa_scored_scheme_t *s, uint32_t n, lth4sa_searcher_progress_t *p, lth4sa_error_t *e) {
    (void)i; (void)s; (void)n; (void)p; (void)e;
    return LTH4SA_OK;
}
static uint64_t bad_state_size(void *i) {
    (void)i;
#if defined(HUGE_STATE)
    return (uint64_t)1 << 50;
#else
    return 8;
#endif
}
static lth4sa_status_t bad_save(void *i, void *buffer, uint64_t size, lth4sa_error_t *e) {
    (void)i; (void)e;
#if defined(SAVE_OVERRUN)
    memset(buffer, 7, (size_t)size + 5);
#else
    memset(buffer, 7, (size_t)size);
#endif
    return LTH4SA_OK;
}
static lth4sa_status_t bad_load(void *i, const void *buffer, uint64_t size, lth4sa_error_t *e) {
    (void)i; (void)buffer; (void)size; (void)e;
    return LTH4SA_OK;
}

static const lth4sa_searcher_api_t bad_api = {
    .struct_size = sizeof(lth4sa_searcher_api_t), .create = bad_create, .destroy = bad_destroy, .ask = bad_ask, .tell = bad_tell,
    .state_size = bad_state_size, .save = bad_save, .load = bad_load};

LTH4SA_SINGLE_SEARCHER_ENTRY(bad_descriptor, bad_api)
