/* The C twin of process_a: observes (["some-tag"], "xxx") through the router and prints its
 * first state. Build: make -C examples/c; run: examples/c/observer [ws://127.0.0.1:3001] */
#include <stdio.h>

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
    HakubanObjectObserveContract *contract = NULL;
    HakubanObjectStateStream *stream = NULL;
    HakubanObjectState *state = NULL;
    const char *tags[] = {"\"some-tag\""};
    int result = 0;

    if (hakuban_runtime_new(1, &runtime) != HAKUBAN_OK) return fail("runtime");
    if (hakuban_exchange_new(&exchange) != HAKUBAN_OK) return fail("exchange");
    if (hakuban_connector_new(runtime, exchange, url, &connector) != HAKUBAN_OK) return fail("connector");
    if (hakuban_object_descriptor_new("\"xxx\"", tags, 1, &descriptor) != HAKUBAN_OK) return fail("descriptor");
    if (hakuban_object_observe_contract_new(exchange, descriptor, &contract) != HAKUBAN_OK) return fail("contract");
    /* The contract yields its stream at once; the stream yields once the exposer has sent. */
    if (hakuban_object_observe_contract_next(contract, -1, &stream) != HAKUBAN_OK) return fail("stream");
    if (hakuban_object_state_stream_next(stream, -1, &state) == HAKUBAN_OK) {
        size_t length = 0;
        const uint8_t *data = hakuban_object_state_data(state, &length);
        printf("%.*s\n", (int)length, (const char *)data);
        hakuban_object_state_free(state);
    } else {
        result = fail("state");
    }
    hakuban_object_state_stream_free(stream);
    hakuban_object_observe_contract_free(contract);
    hakuban_object_descriptor_free(descriptor);
    hakuban_connector_free(connector);
    hakuban_exchange_free(exchange);
    hakuban_runtime_free(runtime);
    return result;
}
