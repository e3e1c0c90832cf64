// A buyer process of its own, in a worker thread: its modules (and so its in-process registries) are
// its own, its spend store a PostgreSQL schema it shares with other buyer processes. It pays one chat
// request per message and answers the outcome.
import { parentPort } from "node:worker_threads";
import { createPayingFetch, createSpendStore } from "../../src/buyer/index.js";
import { isTollgateError } from "../../src/errors/index.js";
import { createPostgresClient } from "../../src/ledger/index.js";

export type BuyerProcessJob = {
  privateKey: `0x${string}`;
  rpcUrl: string;
  connectionString: string;
  schema: string;
  url: string;
  body: string;
  policy: Record<string, bigint>;
};

export type BuyerProcessOutcome = { status: number; body: string } | { refused: string } | { error: string };

parentPort?.on("message", async (job: BuyerProcessJob) => {
  let outcome: BuyerProcessOutcome;
  const store = await createSpendStore({
    sql: await createPostgresClient({ connectionString: job.connectionString, schema: job.schema }),
  });
  const payingFetch = createPayingFetch({
    privateKey: job.privateKey,
    rpcUrl: job.rpcUrl,
    store,
    policy: job.policy,
  });
  try {
    const response = await payingFetch(job.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: job.body,
    });
    outcome = { status: response.status, body: await response.text() };
    await payingFetch.idle();
  } catch (error) {
    outcome = isTollgateError(error, "TOLLGATE_POLICY_REFUSED")
      ? { refused: String(error.details.rule) }
      : { error: String(error) };
  } finally {
    await payingFetch.close();
    await store.close();
  }
  parentPort?.postMessage(outcome);
});
