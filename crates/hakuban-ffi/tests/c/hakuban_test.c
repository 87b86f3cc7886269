/* The C API, from C: compiled against include/hakuban.h and the built library, run under
 * valgrind by tests/c_api.rs. Usage: hakuban_test ROUTER_URL (a running hakuban-router).
 * Every check prints what failed and exits non-zero. */
#define _POSIX_C_SOURCE 200809L
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakuban.h"

static int failures = 0;

#define CHECK(condition)                                                                     \
    do {                                                                                     \
        if (!(condition)) {                                                                  \
            fprintf(stderr, "%s:%d: check failed: %s (last error: %s)\n", __FILE__, __LINE__, \
                    #condition, hakuban_last_error_message());                                \
            failures++;                                                                      \
        }                                                                                    \
    } while (0)

#define OK(call) CHECK((call) == HAKUBAN_OK)

static HakubanObjectDescriptor *object(const char *json, const char *tag) {
    HakubanObjectDescriptor *descriptor = NULL;
    const char *tags[1] = {tag};
    OK(hakuban_object_descriptor_new(json, tags, tag ? 1 : 0, &descriptor));
    return descriptor;
}

static HakubanObjectState *text_state(int64_t version, const char *text) {
    HakubanObjectState *state = NULL;
    const char *format[1] = {"text"};
    OK(hakuban_object_state_new(&version, 1, format, 1, (const uint8_t *)text, strlen(text), 0, &state));
    return state;
}

/* Whether `state` holds `text` at `version`. */
static int state_is(const HakubanObjectState *state, int64_t version, const char *text) {
    size_t version_len = 0, data_len = 0;
    const int64_t *v = hakuban_object_state_version(state, &version_len);
    const uint8_t *data = hakuban_object_state_data(state, &data_len);
    return version_len == 1 && v[0] == version && data_len == strlen(text) && memcmp(data, text, data_len) == 0 &&
           hakuban_object_state_format_len(state) == 1 && strcmp(hakuban_object_state_format(state, 0), "text") == 0;
}

/* Waits (bounded) until `stream` yields a state with `version`; returns it (owned) or NULL. */
static HakubanObjectState *until_version(HakubanObjectStateStream *stream, int64_t version) {
    for (int i = 0; i < 200; i++) {
        HakubanObjectState *state = NULL;
        HakubanStatus status = hakuban_object_state_stream_next(stream, 100, &state);
        if (status == HAKUBAN_OK) {
            size_t len = 0;
            const int64_t *v = hakuban_object_state_version(state, &len);
            if (len == 1 && v[0] == version) return state;
            hakuban_object_state_free(state);
        } else if (status != HAKUBAN_PENDING) {
            return NULL;
        }
    }
    return NULL;
}

static void local_object_observe_and_expose(void) {
    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanObjectDescriptor *descriptor = object("{\"id\":1}", "\"t\"");
    CHECK(strcmp(hakuban_object_descriptor_json(descriptor), "{\"id\":1}") == 0);
    CHECK(hakuban_object_descriptor_tags_len(descriptor) == 1);
    CHECK(strcmp(hakuban_object_descriptor_tag(descriptor, 0), "\"t\"") == 0);
    CHECK(hakuban_object_descriptor_tag(descriptor, 1) == NULL);

    HakubanObjectObserveContract *observe = NULL;
    HakubanObjectExposeContract *expose = NULL;
    OK(hakuban_object_observe_contract_new(exchange, descriptor, &observe));
    OK(hakuban_object_expose_contract_new(exchange, descriptor, 1, &expose));
    HakubanObjectStateStream *stream = NULL;
    HakubanObjectStateSink *sink = NULL;
    OK(hakuban_object_observe_contract_next(observe, 0, &stream));
    OK(hakuban_object_expose_contract_next(expose, 1000, &sink));
    CHECK(strcmp(hakuban_object_descriptor_json(hakuban_object_state_stream_descriptor(stream)), "{\"id\":1}") == 0);

    /* A wait that times out: no state yet. */
    HakubanObjectState *state = NULL;
    CHECK(hakuban_object_state_stream_next(stream, 50, &state) == HAKUBAN_PENDING);
    CHECK(state == NULL);

    CHECK(hakuban_object_state_sink_next(sink, 0) == HAKUBAN_OK);      /* may produce */
    CHECK(hakuban_object_state_sink_next(sink, 0) == HAKUBAN_PENDING); /* still elected */
    HakubanObjectState *sent = text_state(1, "hello");
    OK(hakuban_object_state_sink_send(sink, sent));
    hakuban_object_state_free(sent);
    OK(hakuban_object_state_stream_next(stream, 1000, &state));
    CHECK(state_is(state, 1, "hello"));
    CHECK(hakuban_object_state_synchronized_us_ago(state) == 0);
    hakuban_object_state_free(state);

    char *snapshot = NULL;
    OK(hakuban_exchange_snapshot_json(exchange, &snapshot));
    CHECK(snapshot && strstr(snapshot, "\"objects\""));
    hakuban_string_free(snapshot);

    /* Freeing the observe contract ends its stream and revokes the sink. */
    hakuban_object_observe_contract_free(observe);
    CHECK(hakuban_object_state_stream_next(stream, 1000, &state) == HAKUBAN_ENDED);
    CHECK(hakuban_object_state_sink_next(sink, 1000) == HAKUBAN_ENDED);
    hakuban_object_state_stream_free(stream);
    hakuban_object_state_sink_free(sink);
    hakuban_object_expose_contract_free(expose);
    hakuban_object_descriptor_free(descriptor);
    hakuban_exchange_free(exchange);
}

static void local_tag_observe_and_expose(void) {
    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanTagDescriptor *tag = NULL;
    OK(hakuban_tag_descriptor_new("\"t\"", &tag));
    CHECK(strcmp(hakuban_tag_descriptor_json(tag), "\"t\"") == 0);
    HakubanObjectDescriptor *a = object("\"a\"", "\"t\"");
    HakubanObjectDescriptor *b = object("\"b\"", "\"t\"");

    /* A tag observer sees an object exposed by an object contract... */
    HakubanTagObserveContract *tag_observe = NULL;
    HakubanObjectExposeContract *expose_a = NULL;
    OK(hakuban_tag_observe_contract_new(exchange, tag, &tag_observe));
    OK(hakuban_object_expose_contract_new(exchange, a, 1, &expose_a));
    HakubanObjectStateStream *stream = NULL;
    OK(hakuban_tag_observe_contract_next(tag_observe, 1000, &stream));
    CHECK(strcmp(hakuban_object_descriptor_json(hakuban_object_state_stream_descriptor(stream)), "\"a\"") == 0);
    HakubanObjectStateSink *sink_a = NULL;
    OK(hakuban_object_expose_contract_next(expose_a, 1000, &sink_a));
    HakubanObjectState *sent = text_state(7, "via tag");
    OK(hakuban_object_state_sink_send(sink_a, sent));
    hakuban_object_state_free(sent);
    HakubanObjectState *state = NULL;
    OK(hakuban_object_state_stream_next(stream, 1000, &state));
    CHECK(state_is(state, 7, "via tag"));
    hakuban_object_state_free(state);

    /* ...and a tag exposer is elected for an object observed by an object contract. */
    HakubanTagExposeContract *tag_expose = NULL;
    HakubanObjectObserveContract *observe_b = NULL;
    OK(hakuban_tag_expose_contract_new(exchange, tag, 1, &tag_expose));
    OK(hakuban_object_observe_contract_new(exchange, b, &observe_b));
    HakubanObjectStateSink *sink_b = NULL;
    OK(hakuban_tag_expose_contract_next(tag_expose, 1000, &sink_b));
    CHECK(strcmp(hakuban_object_descriptor_json(hakuban_object_state_sink_descriptor(sink_b)), "\"b\"") == 0);

    hakuban_object_state_sink_free(sink_b);
    hakuban_object_observe_contract_free(observe_b);
    hakuban_tag_expose_contract_free(tag_expose);
    hakuban_object_state_sink_free(sink_a);
    hakuban_object_state_stream_free(stream);
    hakuban_object_expose_contract_free(expose_a);
    hakuban_tag_observe_contract_free(tag_observe);
    hakuban_object_descriptor_free(a);
    hakuban_object_descriptor_free(b);
    hakuban_tag_descriptor_free(tag);
    hakuban_exchange_free(exchange);
}

/* Two exchanges through `url` (the router, or a listener): b exposes, a observes. */
static void routed_observe_and_expose(HakubanRuntime *runtime, const char *url) {
    HakubanExchange *a = NULL, *b = NULL;
    OK(hakuban_exchange_new(&a));
    OK(hakuban_exchange_new(&b));
    HakubanConnector *ca = NULL, *cb = NULL;
    OK(hakuban_connector_new(runtime, a, url, &ca));
    OK(hakuban_connector_new(runtime, b, url, &cb));
    HakubanConnector *second = NULL;
    CHECK(hakuban_connector_new(runtime, a, url, &second) == HAKUBAN_UPSTREAM_TAKEN);
    HakubanObjectDescriptor *descriptor = object("\"routed\"", "\"r\"");
    HakubanObjectObserveContract *observe = NULL;
    HakubanObjectExposeContract *expose = NULL;
    OK(hakuban_object_observe_contract_new(a, descriptor, &observe));
    OK(hakuban_object_expose_contract_new(b, descriptor, 1, &expose));
    HakubanObjectStateSink *sink = NULL;
    OK(hakuban_object_expose_contract_next(expose, 20000, &sink));
    HakubanObjectStateStream *stream = NULL;
    OK(hakuban_object_observe_contract_next(observe, 1000, &stream));
    HakubanObjectState *sent = text_state(42, "across the network");
    if (sink) OK(hakuban_object_state_sink_send(sink, sent));
    hakuban_object_state_free(sent);
    HakubanObjectState *state = stream ? until_version(stream, 42) : NULL;
    CHECK(state && state_is(state, 42, "across the network"));
    hakuban_object_state_free(state);
    hakuban_object_state_stream_free(stream);
    hakuban_object_state_sink_free(sink);
    hakuban_object_observe_contract_free(observe);
    hakuban_object_expose_contract_free(expose);
    hakuban_object_descriptor_free(descriptor);
    hakuban_connector_free(ca);
    hakuban_connector_free(cb);
    hakuban_exchange_free(a);
    hakuban_exchange_free(b);
}

static void listener_in_c(HakubanRuntime *runtime) {
    HakubanExchange *hub = NULL;
    OK(hakuban_exchange_new(&hub));
    HakubanListener *listener = NULL;
    OK(hakuban_listener_new(runtime, hub, "ws://127.0.0.1:0", &listener));
    const char *url = hakuban_listener_url(listener);
    CHECK(url && strncmp(url, "ws://127.0.0.1:", 15) == 0 && strcmp(url, "ws://127.0.0.1:0") != 0);
    if (url) routed_observe_and_expose(runtime, url);
    /* The same port again: refused with an I/O error. */
    HakubanListener *again = NULL;
    if (url) CHECK(hakuban_listener_new(runtime, hub, url, &again) == HAKUBAN_IO_ERROR);
    hakuban_listener_free(listener);
    hakuban_exchange_free(hub);
}

struct waiter {
    HakubanObjectStateStream *stream; /* the waiter's own handle */
    HakubanStatus status;
};

static void *wait_forever(void *argument) {
    struct waiter *waiter = argument;
    HakubanObjectState *state = NULL;
    waiter->status = hakuban_object_state_stream_next(waiter->stream, -1, &state);
    if (state) hakuban_object_state_free(state);
    hakuban_object_state_stream_free(waiter->stream);
    return NULL;
}

static void a_wait_ended_from_another_thread(void) {
    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanObjectDescriptor *descriptor = object("\"waited\"", NULL);
    HakubanObjectObserveContract *observe = NULL;
    OK(hakuban_object_observe_contract_new(exchange, descriptor, &observe));
    HakubanObjectStateStream *stream = NULL;
    OK(hakuban_object_observe_contract_next(observe, 0, &stream));
    struct waiter waiter = {NULL, HAKUBAN_OK};
    OK(hakuban_object_state_stream_clone(stream, &waiter.stream));
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, wait_forever, &waiter) == 0);
    /* Whether the waiter is asleep yet or not, ending the stream through our handle ends its
     * wait (or makes it return at once) with HAKUBAN_ENDED. */
    hakuban_object_state_stream_free(stream);
    CHECK(pthread_join(thread, NULL) == 0);
    CHECK(waiter.status == HAKUBAN_ENDED);
    /* The same for a contract: a thread waiting for its next stream is ended by a free. */
    HakubanObjectObserveContract *mine = NULL;
    OK(hakuban_object_observe_contract_clone(observe, &mine));
    HakubanObjectStateStream *next = NULL;
    CHECK(hakuban_object_observe_contract_next(mine, 0, &next) == HAKUBAN_OK); /* the fresh stream */
    hakuban_object_state_stream_free(next);
    hakuban_object_observe_contract_free(observe);
    CHECK(hakuban_object_observe_contract_next(mine, -1, &next) == HAKUBAN_ENDED);
    hakuban_object_observe_contract_free(mine);
    hakuban_object_descriptor_free(descriptor);
    hakuban_exchange_free(exchange);
}

static void fd_notification_drives_a_poll_loop(void) {
    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanObjectDescriptor *descriptor = object("\"polled\"", NULL);
    HakubanObjectObserveContract *observe = NULL;
    HakubanObjectExposeContract *expose = NULL;
    OK(hakuban_object_observe_contract_new(exchange, descriptor, &observe));
    OK(hakuban_object_expose_contract_new(exchange, descriptor, 1, &expose));
    HakubanObjectStateStream *stream = NULL;
    HakubanObjectStateSink *sink = NULL;
    OK(hakuban_object_observe_contract_next(observe, 0, &stream));
    OK(hakuban_object_expose_contract_next(expose, 0, &sink));
    int fd = -1;
    OK(hakuban_object_state_stream_fd(stream, &fd));
    CHECK(fd >= 0);
    /* Drain: nothing yet. */
    HakubanObjectState *state = NULL;
    CHECK(hakuban_object_state_stream_next(stream, 0, &state) == HAKUBAN_PENDING);
    struct pollfd pfd = {fd, POLLIN, 0};
    CHECK(poll(&pfd, 1, 0) == 0); /* not readable while nothing is new */
    int64_t seen = 0;
    for (int64_t version = 1; version <= 3; version++) {
        HakubanObjectState *sent = text_state(version, "tick");
        OK(hakuban_object_state_sink_send(sink, sent));
        hakuban_object_state_free(sent);
        CHECK(poll(&pfd, 1, 5000) == 1 && (pfd.revents & POLLIN));
        while (hakuban_object_state_stream_next(stream, 0, &state) == HAKUBAN_OK) {
            size_t len = 0;
            seen = hakuban_object_state_version(state, &len)[0];
            hakuban_object_state_free(state);
        }
        CHECK(seen == version);
    }
    CHECK(poll(&pfd, 1, 0) == 0);
    hakuban_object_state_sink_free(sink);
    hakuban_object_state_stream_free(stream);
    hakuban_object_expose_contract_free(expose);
    hakuban_object_observe_contract_free(observe);
    hakuban_object_descriptor_free(descriptor);
    hakuban_exchange_free(exchange);
}

static void bad_arguments_return_codes(HakubanRuntime *runtime) {
    HakubanObjectDescriptor *descriptor = NULL;
    CHECK(hakuban_object_descriptor_new("{not json", NULL, 0, &descriptor) == HAKUBAN_INVALID_JSON);
    CHECK(descriptor == NULL);
    CHECK(strlen(hakuban_last_error_message()) > 0);
    const char *bad_tags[1] = {"[unclosed"};
    CHECK(hakuban_object_descriptor_new("1", bad_tags, 1, &descriptor) == HAKUBAN_INVALID_JSON);
    CHECK(hakuban_object_descriptor_new(NULL, NULL, 0, &descriptor) == HAKUBAN_NULL_ARGUMENT);
    CHECK(hakuban_object_descriptor_new("1", NULL, 1, &descriptor) == HAKUBAN_NULL_ARGUMENT);
    CHECK(hakuban_object_descriptor_new("1", NULL, 0, NULL) == HAKUBAN_NULL_ARGUMENT);
    const char not_utf8[] = {'"', (char)0xff, (char)0xfe, '"', 0};
    CHECK(hakuban_object_descriptor_new(not_utf8, NULL, 0, &descriptor) == HAKUBAN_INVALID_UTF8);
    HakubanTagDescriptor *tag = NULL;
    CHECK(hakuban_tag_descriptor_new(not_utf8, &tag) == HAKUBAN_INVALID_UTF8);
    CHECK(hakuban_tag_descriptor_new("nope nope", &tag) == HAKUBAN_INVALID_JSON);

    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanConnector *connector = NULL;
    CHECK(hakuban_connector_new(runtime, exchange, "not a url", &connector) == HAKUBAN_INVALID_URL);
    CHECK(hakuban_connector_new(runtime, exchange, "http://127.0.0.1:1", &connector) == HAKUBAN_INVALID_URL);
    CHECK(hakuban_connector_new(runtime, exchange, "ws://127.0.0.1:1#timeout=soon", &connector) == HAKUBAN_INVALID_URL);
    CHECK(hakuban_connector_new(NULL, exchange, "ws://127.0.0.1:1", &connector) == HAKUBAN_NULL_ARGUMENT);
    CHECK(connector == NULL);
    HakubanObjectState *state = NULL;
    CHECK(hakuban_object_state_new(NULL, 2, NULL, 0, NULL, 0, 0, &state) == HAKUBAN_NULL_ARGUMENT);
    CHECK(hakuban_object_state_stream_next(NULL, 0, &state) == HAKUBAN_NULL_ARGUMENT);
    CHECK(hakuban_object_state_sink_send(NULL, NULL) == HAKUBAN_NULL_ARGUMENT);
    CHECK(hakuban_logging_init("info,=[") == HAKUBAN_INVALID_LOG_FILTER);
    OK(hakuban_logging_init("warn"));
    OK(hakuban_logging_init("error")); /* any number of times */
    /* Freeing NULL is harmless. */
    hakuban_exchange_free(NULL);
    hakuban_object_state_stream_free(NULL);
    hakuban_runtime_free(NULL);
    hakuban_exchange_free(exchange);
}

/* Teardown with the runtime freed first: the connector keeps it until it goes. */
static void runtime_freed_first(const char *url) {
    HakubanRuntime *runtime = NULL;
    OK(hakuban_runtime_new(1, &runtime));
    HakubanExchange *exchange = NULL;
    OK(hakuban_exchange_new(&exchange));
    HakubanConnector *connector = NULL;
    OK(hakuban_connector_new(runtime, exchange, url, &connector));
    HakubanObjectDescriptor *descriptor = object("\"late\"", NULL);
    HakubanObjectObserveContract *observe = NULL;
    OK(hakuban_object_observe_contract_new(exchange, descriptor, &observe));
    hakuban_runtime_free(runtime);
    hakuban_exchange_free(exchange);
    hakuban_object_descriptor_free(descriptor);
    hakuban_connector_free(connector);
    hakuban_object_observe_contract_free(observe);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ROUTER_URL\n", argv[0]);
        return 2;
    }
    local_object_observe_and_expose();
    local_tag_observe_and_expose();
    a_wait_ended_from_another_thread();
    fd_notification_drives_a_poll_loop();

    HakubanRuntime *runtime = NULL;
    OK(hakuban_runtime_new(2, &runtime));
    bad_arguments_return_codes(runtime);
    routed_observe_and_expose(runtime, argv[1]);
    listener_in_c(runtime);
    hakuban_runtime_free(runtime); /* runtime last */
    runtime_freed_first(argv[1]);

    if (failures) {
        fprintf(stderr, "%d checks failed\n", failures);
        return 1;
    }
    printf("hakuban C API: all checks passed\n");
    return 0;
}
