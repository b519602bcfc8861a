/*
 * deinit_counter.c - lets a test prove the request_deinit contract: it is
 * called after every handle_request, on the same thread, and only once the
 * server no longer reads the response.
 *
 * Body of each response:
 *   calls=<n> deinits=<n> same_thread=<1|0> total_calls=<n> total_deinits=<n>
 *   wrong_thread=<n> missed=<n>
 * (one line, single spaces)
 *   calls, deinits   this thread's counts; deinits is counted before this call
 *   wrong_thread     request_deinit calls on a thread with no response
 *                    outstanding (called on the wrong thread, or twice)
 *   missed           handle_request calls that found this thread's previous
 *                    response not yet released by request_deinit
 *   same_thread      1 while wrong_thread and missed are both 0
 *   total_*          process-wide counts
 * request_deinit overwrites the body with '#' before releasing it, so a
 * server that reads the response after request_deinit sends '#'s.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "flexilib.h"

static atomic_size_t total_calls;
static atomic_size_t total_deinits;
static atomic_size_t wrong_thread;
static atomic_size_t missed;

static __thread size_t calls;
static __thread size_t deinits;
static __thread int outstanding;
static __thread char body[256];
static __thread flexilib_response response;

flexilib_response *handle_request(flexilib_request *request)
{
    (void)request;
    if (outstanding)
        atomic_fetch_add(&missed, 1);
    calls++;
    size_t all_calls = atomic_fetch_add(&total_calls, 1) + 1;
    size_t wrong = atomic_load(&wrong_thread);
    size_t miss = atomic_load(&missed);
    int n = snprintf(body, sizeof body,
                     "calls=%zu deinits=%zu same_thread=%d total_calls=%zu total_deinits=%zu "
                     "wrong_thread=%zu missed=%zu",
                     calls, deinits, wrong == 0 && miss == 0, all_calls,
                     atomic_load(&total_deinits), wrong, miss);
    response = (flexilib_response){.ptr = body, .len = (size_t)n};
    outstanding = 1;
    return &response;
}

void request_deinit(void)
{
    if (!outstanding) {
        atomic_fetch_add(&wrong_thread, 1);
        return;
    }
    memset(body, '#', sizeof body);
    outstanding = 0;
    deinits++;
    atomic_fetch_add(&total_deinits, 1);
}
