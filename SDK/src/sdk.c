/* The SDK is headers only; SwiftPM needs one translation unit to build it as a C target. */
#include <lth4sa/lth4sa.h>
