/* lth4sa plugin ABI: versions, status codes, errors, thread tags and the nullability macros.
 *
 * Rules for the whole ABI (learned from CLAP, DLPack, ggml and ONNX Runtime custom ops):
 * - one exported entry point per library, `lth4sa_plugin_entry` (see entry.h);
 * - tables and single structs (entry, descriptor, API tables, layout, search space, progress)
 *   start with `struct_size`; they only ever grow by appending fields, and the host never
 *   reads past the size a plugin declares;
 * - structs used as array elements (option, option value, parameter declaration, tensor,
 *   scored scheme) and the error buffer cannot carry a size: they are FROZEN, marked so where
 *   they are declared, and never change; a new layout would be a new struct and a new interface;
 * - integers of fixed width instead of C enums inside structs; constants are only appended;
 * - every call that can fail returns an `lth4sa_status_t` and writes a one-line message into
 *   the caller's `lth4sa_error_t`; a plugin never aborts, exits or throws across the ABI;
 * - pointers are borrowed for the duration of the call unless a comment says otherwise.
 *
 * Thread tags: every function of the ABI carries one of these in its comment.
 *   [main thread]     called only from the thread that drives the instance (the one that
 *                     created it); never concurrently for one instance. Different instances
 *                     may be driven from different threads.
 *   [any thread]      may be called from any thread, concurrently; no side effects.
 *   [thread-safe]     a host service the plugin may call from any thread, concurrently.
 *   [calling thread]  a host service the plugin calls from inside one of its own calls, on
 *                     that call's thread (not from threads it started itself).
 * Lifetime tags: [instance] valid until destroy; [call] valid until the function returns;
 * [static] valid as long as the library is loaded. */
#ifndef LTH4SA_BASE_H
#define LTH4SA_BASE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __clang__
#define LTH4SA_NONNULL _Nonnull
#define LTH4SA_NULLABLE _Nullable
#else
#define LTH4SA_NONNULL
#define LTH4SA_NULLABLE
#endif

/* printf-style format checking for helpers that take a format string. */
#if defined(__GNUC__) || defined(__clang__)
#define LTH4SA_PRINTF(format_index, first_arg) __attribute__((format(printf, format_index, first_arg)))
#else
#define LTH4SA_PRINTF(format_index, first_arg)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/** The ABI version this header describes. Bumped only for incompatible changes. */
#define LTH4SA_ABI_VERSION 1u

/** Status of a call: 0 = success. */
typedef int32_t lth4sa_status_t;
#define LTH4SA_OK 0
#define LTH4SA_ERR_INVALID_ARGUMENT 1  /* a value out of range, a shape that does not fit */
#define LTH4SA_ERR_UNSUPPORTED 2       /* a configuration the plugin cannot run (e.g. C % groups != 0) */
#define LTH4SA_ERR_OUT_OF_MEMORY 3
#define LTH4SA_ERR_INTERNAL 4
/* Status codes are only ever appended. */

/** A short name for `status` ("ok", "invalid argument", ...; "unknown status" otherwise).
 *  [any thread] [static] */
static inline const char *lth4sa_status_string(lth4sa_status_t status) {
    switch (status) {
    case LTH4SA_OK: return "ok";
    case LTH4SA_ERR_INVALID_ARGUMENT: return "invalid argument";
    case LTH4SA_ERR_UNSUPPORTED: return "unsupported";
    case LTH4SA_ERR_OUT_OF_MEMORY: return "out of memory";
    case LTH4SA_ERR_INTERNAL: return "internal error";
    default: return "unknown status";
    }
}

/** Error message buffer owned by the caller; the callee writes a NUL-terminated line.
 *  FROZEN: never changes size or layout. */
typedef struct lth4sa_error {
    char message[256];
} lth4sa_error_t;

/** Plugin kinds (`lth4sa_descriptor_t.kind`). Values are only ever appended. */
#define LTH4SA_KIND_SAM 1u
#define LTH4SA_KIND_SEARCHER 2u /* the searcher half of the ABI arrives with searcher.h */

#ifdef __cplusplus
}
#endif
#endif
