/** The bearer token the tests' `tollgate facilitator` servers want for `/verify`, `/settle` and `/metrics`. */
export const TEST_FACILITATOR_TOKEN = "test-facilitator-token-0123456789";

/** The header that presents it. */
export const facilitatorAuth = { authorization: `Bearer ${TEST_FACILITATOR_TOKEN}` };
