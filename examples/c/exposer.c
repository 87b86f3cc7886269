/* The C twin of process_b: exposes (["some-tag"], "xxx") through the router, and exits once
 * its observer has it and is gone. Build: make -C examples/c; run: examples/c/exposer [URL] */
#include <stdio.h>
#include <string.h>

#include "hakuban.h"

static int fail(const char *what) {
    fprintf(stderr, "%s: %s\n", what, hakuban_last_error_message());
    return 1;
}

int main(int argc, char **argv) {
    const char *url = argc > 1 ? argv[1] : "ws://127.0.0.1:3001";
    HakubanRuntime *runtime = NULL;
    HakubanExchange *exchange = NULL;
    HakubanConnector *connector = NULL;
    HakubanObjectDescriptor *descriptor = NULL;
    HakubanObjectExposeContract *contract = NULL;
    HakubanObjectStateSink *sink = NULL;
    HakubanObjectState *state = NULL;
    const char *tags[] = {"\"some-tag\""};
    const char *format[] = {"JSON"};
    const char *data = "\"\xf0\x9f\xa6\x80\""; /* the JSON string "🦀" */
    int64_t version = 1;

    if (hakuban_runtime_new(1, &runtime) != HAKUBAN_OK) return fail("runtime");
    if (hakuban_exchange_new(&exchange) != HAKUBAN_OK) return fail("exchange");
    if (hakuban_connector_new(runtime, exchange, url, &connector) != HAKUBAN_OK) return fail("connector");
    if (hakuban_object_descriptor_new("\"xxx\"", tags, 1, &descriptor) != HAKUBAN_OK) return fail("descriptor");
    if (hakuban_object_expose_contract_new(exchange, descriptor, 1, &contract) != HAKUBAN_OK) return fail("contract");
    /* A sink comes once someone observes the object. */
    if (hakuban_object_expose_contract_next(contract, -1, &sink) != HAKUBAN_OK) return fail("sink");
    if (hakuban_object_state_new(&version, 1, format, 1, (const uint8_t *)data, strlen(data), 0, &state) != HAKUBAN_OK)
        return fail("state");
    if (hakuban_object_state_sink_send(sink, state) != HAKUBAN_OK) return fail("send");
    hakuban_object_state_free(state);
    /* OK once (may produce), then pending while elected, then ended when the observer is gone. */
    while (hakuban_object_state_sink_next(sink, -1) == HAKUBAN_OK) {
    }
    hakuban_object_state_sink_free(sink);
    hakuban_object_expose_contract_free(contract);
    hakuban_object_descriptor_free(descriptor);
    hakuban_connector_free(connector);
    hakuban_exchange_free(exchange);
    hakuban_runtime_free(runtime);
    return 0;
}
