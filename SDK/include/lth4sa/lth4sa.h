/* Umbrella header of the lth4sa plugin SDK. */
#ifndef LTH4SA_H
#define LTH4SA_H
#include "base.h"
#include "tensor.h"
#include "host.h"
#include "descriptor.h"
#include "sam.h"
#include "searcher.h"
#include "entry.h"
#endif
