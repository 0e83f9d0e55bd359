/* The one symbol a plugin library exports. A library may hold several plugins. */
#ifndef LTH4SA_ENTRY_H
#define LTH4SA_ENTRY_H

#include "base.h"
#include "descriptor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LTH4SA_ENTRY_SYMBOL "lth4sa_plugin_entry"

/** The table `lth4sa_plugin_entry()` returns. [static] */
typedef struct lth4sa_plugin_entry {
    uint32_t struct_size;
    uint32_t abi_version;  /* LTH4SA_ABI_VERSION the library was built against: checked first */
    uint32_t plugin_count;
    uint32_t reserved;
    /** The static descriptor of plugin `index` (< plugin_count). [any thread] */
    const lth4sa_descriptor_t *LTH4SA_NULLABLE (*LTH4SA_NONNULL descriptor)(uint32_t index);
    /** The function table of plugin `index` for a versioned interface id (e.g.
     *  LTH4SA_SAM_INTERFACE), or NULL when the plugin does not implement it. Static. [any thread] */
    const void *LTH4SA_NULLABLE (*LTH4SA_NONNULL factory)(uint32_t index, const char *LTH4SA_NONNULL interface_id);
} lth4sa_plugin_entry_t;

/** Exported by every plugin library; returns a static table. [any thread] Declare it with
 *  `LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { ... }`. */
#define LTH4SA_EXPORT __attribute__((visibility("default")))
typedef const lth4sa_plugin_entry_t *LTH4SA_NONNULL (*lth4sa_entry_fn)(void);

#ifdef __cplusplus
}
#endif
#endif
