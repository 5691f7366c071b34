/* What bindgen reads: the build configuration, then libev's public header. */
#include "ev_config.h"
#include "ev.h"
