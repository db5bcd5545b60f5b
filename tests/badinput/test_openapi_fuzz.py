"""Schemathesis against the daemon's own OpenAPI schema: every operation, fed generated path and query values
(valid and invalid), never answers 5xx and always answers in the shape the schema documents.

The operations are driven with hypothesis directly rather than through schemathesis' pytest plugin, whose lazy
(fixture-loaded) schemas do not run under pytest 9. The daemon documents no request bodies (its handlers decode
them themselves, to word their own errors), so bodies are fuzzed by the corpus, not here.
"""

from __future__ import annotations

import hypothesis
import schemathesis
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

EXAMPLES_PER_OPERATION = 8
"""About 50 operations: enough variety to find a 5xx, and done in well under a minute on 2 cores."""


def test_no_operation_answers_a_server_error_or_off_its_schema(daemon):
    openapi = schemathesis.openapi.from_url(f"{daemon.base_url}/schema/openapi.json", timeout=30)
    failures, operations = [], 0
    for result in openapi.get_all_operations():
        operation = result.ok()
        operations += 1
        cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

        @hypothesis.given(case=cases)
        @hypothesis.settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, derandomize=True, database=None,
                             suppress_health_check=list(hypothesis.HealthCheck), phases=[hypothesis.Phase.generate])
        def call(case):
            if operation.path == "/v1/events" and case.query:
                # stream=true follows every job's events until the client hangs up: there is no end to check
                case.query.pop("stream", None)
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance], timeout=30)

        try:
            call()
        except Exception as exc:  # noqa: BLE001 - every operation's failure is reported, not only the first
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 45, operations
    assert not failures, "\n\n".join(failures)
