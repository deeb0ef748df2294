#ifndef SIGHTLINE_CLIBWEBSOCKETS_SHIM_H
#define SIGHTLINE_CLIBWEBSOCKETS_SHIM_H
#include <libwebsockets.h>

/* LWS_PRE is a macro Swift cannot import: every buffer handed to lws_write needs this headroom. */
enum { SIGHTLINE_LWS_PRE = LWS_PRE };

#endif
