#ifndef SIGHTLINE_CLIBWEBSOCKETS_SHIM_H
#define SIGHTLINE_CLIBWEBSOCKETS_SHIM_H
#include <libwebsockets.h>

/* LWS_PRE is a macro Swift cannot import: every buffer handed to lws_write needs this headroom. */
enum { SIGHTLINE_LWS_PRE = LWS_PRE };

/* A timer that knows its owner: lws hands the callback the sul pointer, which is the first
   member, so the owner is one cast away (lws_container_of does not import). */
typedef struct sightline_timer {
    lws_sorted_usec_list_t sul;
    void *owner;
} sightline_timer;

static inline void *sightline_timer_owner(lws_sorted_usec_list_t *sul) {
    return ((sightline_timer *)sul)->owner;
}

#endif
