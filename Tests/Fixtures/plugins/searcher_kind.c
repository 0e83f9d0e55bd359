/* A library whose only plugin is a searcher: --sam must refuse it. */
#include <lth4sa/lth4sa.h>
static const lth4sa_descriptor_t d = {sizeof(lth4sa_descriptor_t), LTH4SA_KIND_SEARCHER, "dummysearch", "Dummy searcher", "0.1.0", "not a SAM", "MIT", 0, 0, 0};
static const lth4sa_descriptor_t *desc(uint32_t i) { return i == 0 ? &d : 0; }
static const void *factory(uint32_t i, const char *id) { (void)i; (void)id; return 0; }
static const lth4sa_plugin_entry_t entry = {sizeof(lth4sa_plugin_entry_t), LTH4SA_ABI_VERSION, 1, 0, desc, factory};
LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { return &entry; }
