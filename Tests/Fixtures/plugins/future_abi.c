/* A plugin built against a future ABI version: the host must refuse it before reading more. */
#include <lth4sa/lth4sa.h>
static const lth4sa_descriptor_t *desc(uint32_t i) { (void)i; return 0; }
static const void *factory(uint32_t i, const char *id) { (void)i; (void)id; return 0; }
static const lth4sa_plugin_entry_t entry = {sizeof(lth4sa_plugin_entry_t), 99, 1, 0, desc, factory};
LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { return &entry; }
