/* Static plugin descriptions, cheap to read without creating anything (what
 * `lth4sa plugins` and `lth4sa plugins info` print). All strings are static and UTF-8. */
#ifndef LTH4SA_DESCRIPTOR_H
#define LTH4SA_DESCRIPTOR_H

#include "base.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Option value types. */
#define LTH4SA_OPTION_INT 0u
#define LTH4SA_OPTION_FLOAT 1u
#define LTH4SA_OPTION_BOOL 2u

/** One declared option (`--sam-opt name=value`). The host checks type and range before
 *  `create` and always passes every declared option (defaults filled in). [static]
 *  FROZEN (array element): never changes size or layout. */
typedef struct lth4sa_option {
    const char *LTH4SA_NONNULL name;
    uint32_t type;      /* LTH4SA_OPTION_* */
    uint32_t reserved;
    double default_value;
    double min_value;   /* inclusive */
    double max_value;   /* inclusive */
    const char *LTH4SA_NONNULL doc;
} lth4sa_option_t;

/** A parsed option value handed to `create`. [call]
 *  FROZEN (array element): never changes size or layout. */
typedef struct lth4sa_option_value {
    const char *LTH4SA_NONNULL name;
    double value;       /* ints and bools as whole numbers */
} lth4sa_option_value_t;

/* Capability flags (`lth4sa_descriptor_t.flags`, append-only). */
/** The plugin's instances may be driven from several threads at once, each instance by one
 *  thread at a time, and from a thread other than the one that created it: the plugin keeps no
 *  state outside its instances (no globals, no thread-locals carried between calls) and uses
 *  only the host services of the instance's own host table. The host then runs replicas of a
 *  network side by side, one per core ("lanes"); without the flag a network with this SAM runs
 *  on one thread of control. `lth4sa plugins check` verifies it (concurrent calls on two
 *  instances equal serial ones). */
#define LTH4SA_PLUGIN_CONCURRENT_INSTANCES 1u

/** What `lth4sa plugins` shows of a plugin; returned by the entry's `descriptor`. [static] */
typedef struct lth4sa_descriptor {
    uint32_t struct_size;
    uint32_t kind;                          /* LTH4SA_KIND_* */
    const char *LTH4SA_NONNULL id;          /* stable, lowercase, e.g. "se" */
    const char *LTH4SA_NONNULL name;        /* e.g. "Squeeze-and-Excitation" */
    const char *LTH4SA_NONNULL version;     /* semantic version of the plugin */
    const char *LTH4SA_NONNULL description; /* one line */
    const char *LTH4SA_NONNULL license;
    uint32_t option_count;
    uint32_t reserved;
    const lth4sa_option_t *LTH4SA_NULLABLE options;
    /* Appended (read only when `struct_size` covers it; a descriptor built with an older header
     * ends after `options`). */
    uint32_t flags;                         /* LTH4SA_PLUGIN_* capabilities */
    uint32_t reserved2;
} lth4sa_descriptor_t;

#ifdef __cplusplus
}
#endif
#endif
