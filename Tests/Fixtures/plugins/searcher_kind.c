/* A library whose only plugin is a searcher: --sam must refuse it. */
#include <lth4sa/lth4sa.h>
static const lth4sa_descriptor_t d = {
    .struct_size = sizeof(lth4sa_descriptor_t),
    .kind = LTH4SA_KIND_SEARCHER,
    .id = "dummysearch",
    .name = "Dummy searcher",
    .version = "0.1.0",
    .description = "not a SAM",
    .license = "MIT",
    .option_count = 0};
static const lth4sa_descriptor_t *desc(uint32_t i) { return i == 0 ? &d : 0; }
static const void *factory(uint32_t i, const char *id) { (void)i; (void)id; return 0; }
static const lth4sa_plugin_entry_t entry = {
    .struct_size = sizeof(lth4sa_plugin_entry_t),
    .abi_version = LTH4SA_ABI_VERSION,
    .plugin_count = 1,
    .descriptor = desc,
    .factory = factory};
LTH4SA_EXPORT const lth4sa_plugin_entry_t *lth4sa_plugin_entry(void) { return &entry; }
