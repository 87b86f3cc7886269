/* Stress: worker threads share one exchange, each observing and exposing a few objects over and
 * over (taking streams and sinks, sending and reading states), while a chaos thread ends their
 * handles at random moments through clones of its own. Bounded by rounds; run under valgrind by
 * tests/c_api.rs: no crash, no hang, no leak, no status other than OK, PENDING or ENDED. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hakuban.h"

#define WORKERS 4
#define ROUNDS 600
#define OBJECTS 3

enum kind { OBSERVE, EXPOSE, STREAM, SINK };

struct victim {
    enum kind kind;
    void *handle;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct victim victims[WORKERS * 8];
static int victim_count = 0;
static int workers_left = WORKERS;
static int bad_statuses = 0;
static HakubanExchange *exchange;
static HakubanObjectDescriptor *objects[OBJECTS];

static void expect(HakubanStatus status) {
    if (status != HAKUBAN_OK && status != HAKUBAN_PENDING && status != HAKUBAN_ENDED) {
        pthread_mutex_lock(&lock);
        bad_statuses++;
        fprintf(stderr, "unexpected status %d: %s\n", (int)status, hakuban_last_error_message());
        pthread_mutex_unlock(&lock);
    }
}

static void end(struct victim victim) {
    switch (victim.kind) {
        case OBSERVE: hakuban_object_observe_contract_free(victim.handle); break;
        case EXPOSE: hakuban_object_expose_contract_free(victim.handle); break;
        case STREAM: hakuban_object_state_stream_free(victim.handle); break;
        case SINK: hakuban_object_state_sink_free(victim.handle); break;
    }
}

/* Hands a clone to the chaos thread (or ends it at once when the list is full). */
static void offer(enum kind kind, void *clone) {
    struct victim victim = {kind, clone};
    pthread_mutex_lock(&lock);
    if (victim_count < (int)(sizeof victims / sizeof victims[0])) {
        victims[victim_count++] = victim;
        victim.handle = NULL;
    }
    pthread_mutex_unlock(&lock);
    if (victim.handle) end(victim);
}

static unsigned next_random(unsigned *seed) {
    *seed = *seed * 1103515245u + 12345u;
    return (*seed >> 16) & 0x7fff;
}

static void *worker(void *argument) {
    unsigned seed = (unsigned)(size_t)argument;
    for (int round = 0; round < ROUNDS; round++) {
        HakubanObjectObserveContract *observe = NULL, *observe_clone = NULL;
        HakubanObjectExposeContract *expose = NULL, *expose_clone = NULL;
        expect(hakuban_object_observe_contract_new(exchange, objects[next_random(&seed) % OBJECTS], &observe));
        expect(hakuban_object_expose_contract_new(exchange, objects[next_random(&seed) % OBJECTS], 1, &expose));
        if (next_random(&seed) % 4 == 0 && hakuban_object_observe_contract_clone(observe, &observe_clone) == HAKUBAN_OK)
            offer(OBSERVE, observe_clone);
        if (next_random(&seed) % 4 == 0 && hakuban_object_expose_contract_clone(expose, &expose_clone) == HAKUBAN_OK)
            offer(EXPOSE, expose_clone);

        HakubanObjectStateStream *stream = NULL, *stream_clone = NULL;
        HakubanObjectStateSink *sink = NULL, *sink_clone = NULL;
        HakubanStatus status = hakuban_object_observe_contract_next(observe, 20, &stream);
        expect(status);
        if (status == HAKUBAN_OK && next_random(&seed) % 3 == 0 &&
            hakuban_object_state_stream_clone(stream, &stream_clone) == HAKUBAN_OK)
            offer(STREAM, stream_clone);
        status = hakuban_object_expose_contract_next(expose, 20, &sink);
        expect(status);
        if (status == HAKUBAN_OK) {
            if (next_random(&seed) % 3 == 0 && hakuban_object_state_sink_clone(sink, &sink_clone) == HAKUBAN_OK)
                offer(SINK, sink_clone);
            expect(hakuban_object_state_sink_next(sink, 0));
            int64_t version = round;
            HakubanObjectState *state = NULL;
            expect(hakuban_object_state_new(&version, 1, NULL, 0, (const uint8_t *)"stress", 6, 0, &state));
            expect(hakuban_object_state_sink_send(sink, state));
            hakuban_object_state_free(state);
        }
        if (stream) {
            for (int i = 0; i < 3; i++) {
                HakubanObjectState *state = NULL;
                status = hakuban_object_state_stream_next(stream, next_random(&seed) % 5, &state);
                expect(status);
                if (state) hakuban_object_state_free(state);
                if (status == HAKUBAN_ENDED) break;
            }
        }
        /* Own handles go in a random order. */
        if (next_random(&seed) % 2) {
            hakuban_object_state_stream_free(stream);
            hakuban_object_observe_contract_free(observe);
            hakuban_object_state_sink_free(sink);
            hakuban_object_expose_contract_free(expose);
        } else {
            hakuban_object_expose_contract_free(expose);
            hakuban_object_observe_contract_free(observe);
            hakuban_object_state_sink_free(sink);
            hakuban_object_state_stream_free(stream);
        }
    }
    pthread_mutex_lock(&lock);
    workers_left--;
    pthread_mutex_unlock(&lock);
    return NULL;
}

static void *chaos(void *argument) {
    unsigned seed = (unsigned)(size_t)argument;
    for (;;) {
        struct victim victim = {OBSERVE, NULL};
        int done;
        pthread_mutex_lock(&lock);
        done = workers_left == 0;
        if (victim_count > 0) {
            int index = (int)(next_random(&seed) % (unsigned)victim_count);
            victim = victims[index];
            victims[index] = victims[--victim_count];
        }
        pthread_mutex_unlock(&lock);
        if (victim.handle) {
            struct timespec pause = {0, (long)(next_random(&seed) % 2000) * 1000};
            nanosleep(&pause, NULL);
            end(victim);
        } else if (done) {
            return NULL;
        } else {
            struct timespec pause = {0, 200 * 1000};
            nanosleep(&pause, NULL);
        }
    }
}

/* Lost wake-ups: two threads ping-pong through two objects with waits that never time out.
 * Each side publishes version n only after seeing the other's n, so a single lost wake-up
 * deadlocks the pair (and the harness's timeout fails the run). */
#define PING_PONGS 2000

struct side {
    HakubanObjectDescriptor *mine, *theirs;
    int failed;
};

static void *ping_pong(void *argument) {
    struct side *side = argument;
    HakubanObjectExposeContract *expose = NULL;
    HakubanObjectObserveContract *observe = NULL;
    HakubanObjectStateSink *sink = NULL;
    HakubanObjectStateStream *stream = NULL;
    if (hakuban_object_expose_contract_new(exchange, side->mine, 1, &expose) != HAKUBAN_OK ||
        hakuban_object_observe_contract_new(exchange, side->theirs, &observe) != HAKUBAN_OK ||
        hakuban_object_observe_contract_next(observe, -1, &stream) != HAKUBAN_OK ||
        hakuban_object_expose_contract_next(expose, -1, &sink) != HAKUBAN_OK) {
        side->failed = 1;
    }
    for (int64_t n = 1; !side->failed && n <= PING_PONGS; n++) {
        HakubanObjectState *state = NULL;
        if (hakuban_object_state_new(&n, 1, NULL, 0, NULL, 0, 0, &state) != HAKUBAN_OK ||
            hakuban_object_state_sink_send(sink, state) != HAKUBAN_OK) {
            side->failed = 1;
        }
        hakuban_object_state_free(state);
        int64_t seen = 0;
        while (!side->failed && seen < n) {
            HakubanObjectState *theirs = NULL;
            if (hakuban_object_state_stream_next(stream, -1, &theirs) != HAKUBAN_OK) {
                side->failed = 1;
                break;
            }
            size_t len = 0;
            const int64_t *version = hakuban_object_state_version(theirs, &len);
            seen = len == 1 ? version[0] : 0;
            hakuban_object_state_free(theirs);
        }
    }
    hakuban_object_state_sink_free(sink);
    hakuban_object_state_stream_free(stream);
    hakuban_object_observe_contract_free(observe);
    hakuban_object_expose_contract_free(expose);
    return NULL;
}

static int lost_wake_ups(void) {
    HakubanObjectDescriptor *ping = NULL, *pong = NULL;
    if (hakuban_object_descriptor_new("\"ping\"", NULL, 0, &ping) != HAKUBAN_OK) return 1;
    if (hakuban_object_descriptor_new("\"pong\"", NULL, 0, &pong) != HAKUBAN_OK) return 1;
    struct side a = {ping, pong, 0}, b = {pong, ping, 0};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, ping_pong, &a);
    pthread_create(&tb, NULL, ping_pong, &b);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    hakuban_object_descriptor_free(ping);
    hakuban_object_descriptor_free(pong);
    if (a.failed || b.failed) fprintf(stderr, "ping-pong failed: %s\n", hakuban_last_error_message());
    return a.failed || b.failed;
}

int main(void) {
    if (hakuban_exchange_new(&exchange) != HAKUBAN_OK) return 1;
    for (int i = 0; i < OBJECTS; i++) {
        char json[16];
        snprintf(json, sizeof json, "%d", i);
        if (hakuban_object_descriptor_new(json, NULL, 0, &objects[i]) != HAKUBAN_OK) return 1;
    }
    pthread_t workers[WORKERS], chaos_thread;
    for (size_t i = 0; i < WORKERS; i++) pthread_create(&workers[i], NULL, worker, (void *)(i + 1));
    pthread_create(&chaos_thread, NULL, chaos, (void *)99);
    for (size_t i = 0; i < WORKERS; i++) pthread_join(workers[i], NULL);
    pthread_join(chaos_thread, NULL);
    for (int i = 0; i < OBJECTS; i++) hakuban_object_descriptor_free(objects[i]);
    if (lost_wake_ups()) return 1;
    char *snapshot = NULL;
    int leftover = 0;
    if (hakuban_exchange_snapshot_json(exchange, &snapshot) == HAKUBAN_OK) {
        leftover = strcmp(snapshot, "{\"objects\":[],\"tags\":[],\"upstream_connection\":false}") != 0;
        if (leftover) fprintf(stderr, "exchange not empty after the stress: %s\n", snapshot);
        hakuban_string_free(snapshot);
    }
    hakuban_exchange_free(exchange);
    if (bad_statuses || leftover) return 1;
    printf("hakuban C API stress: %d workers x %d rounds, no unexpected status; %d blocking ping-pongs\n", WORKERS,
           ROUNDS, PING_PONGS);
    return 0;
}
