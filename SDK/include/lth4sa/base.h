/* lth4sa plugin ABI: versions, status codes, errors and the nullability macros.
 *
 * Rules for the whole ABI (learned from CLAP, DLPack and ONNX Runtime custom ops):
 * - one exported entry point per library, `lth4sa_plugin_entry` (see entry.h);
 * - every struct starts with `struct_size`; tables only ever grow by appending fields, and
 *   the host never reads past the size a plugin declares;
 * - integers of fixed width instead of C enums inside structs;
 * - every call that can fail returns an `lth4sa_status_t` and writes a one-line message into
 *   the caller's `lth4sa_error_t`; a plugin never aborts, exits or throws across the ABI;
 * - pointers are borrowed for the duration of the call unless a comment says otherwise. */
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

/** Error message buffer owned by the caller; the callee writes a NUL-terminated line. */
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
