import { randomBytes } from "node:crypto";
import { type Logger, TollgateError } from "../errors/index.js";
import type { ReplicaRecord, ReplicaRegistry } from "../ledger/index.js";

/** What replicas on one database must agree on: where money goes, in which token, and who claims channels. */
export type ReplicaTerms = {
  payTo: string;
  asset: string;
  /** The receiver-authorizer address channels are opened to and claimed with, or "off" without channels. */
  channels: string;
  /** The withdraw delay channels are opened with (s), or "off": a replica refuses channels of a shorter one. */
  withdrawDelaySeconds: string;
};

export type JoinReplicasParameters = {
  replicas: ReplicaRegistry;
  network: string;
  terms: ReplicaTerms;
  logger: Logger;
};

/** How often a replica shows it is alive (ms). */
const BEAT_MS = 10_000;
/** A replica not seen for this long is taken for stopped (ms): three missed beats. */
const LIVE_WITHIN_MS = 30_000;

const termNames: Record<keyof ReplicaTerms, string> = {
  payTo: "payTo",
  asset: "asset",
  channels: "channels (receiver-authorizer)",
  withdrawDelaySeconds: "channels.withdrawDelaySeconds",
};

/**
 * Registers this gateway among the replicas on its database, refusing to start (`TOLLGATE_CONFIG_INVALID`)
 * beside a live one that takes money on other terms: channels opened through one replica (to its payTo,
 * token and receiver-authorizer) are claimed only by replicas with the same terms, so once that replica
 * stops they would lie unclaimed until their payers withdraw what they were charged, and a buyer bounced
 * between the two deposits again for each. Returns how to leave, when the gateway stops.
 */
export async function joinReplicas({
  replicas,
  network,
  terms,
  logger,
}: JoinReplicasParameters): Promise<{ leave(): Promise<void> }> {
  const id = randomBytes(8).toString("hex");
  const mine = terms as Record<string, string>;
  const differences = (sibling: ReplicaRecord) =>
    (Object.keys(termNames) as (keyof ReplicaTerms)[])
      .filter((name) => (sibling.terms[name] ?? "").toLowerCase() !== mine[name]!.toLowerCase())
      .map((name) => `${termNames[name]} ${sibling.terms[name] ?? "unset"} there, ${mine[name]} here`);
  const { joined, siblings } = await replicas.join({
    id,
    network,
    terms: mine,
    liveWithinMs: LIVE_WITHIN_MS,
    accept: (live) => live.every((sibling) => differences(sibling).length === 0),
  });
  if (!joined) {
    const other = siblings.find((sibling) => differences(sibling).length > 0)!;
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `another gateway on this database (replica ${other.id}, alive ${Math.round(other.seenMsAgo / 1000)} s ago) takes money on ${network} on other terms: ${differences(other).join("; ")}. Replicas on one database must have the same payTo, asset and channels section, with one receiver-authorizer key and one withdraw delay: channels opened through one are taken and claimed only by replicas like it (a buyer sent to the other deposits again), so once it stops their charges lie unclaimed until the payers withdraw them. Give this gateway the same config, or stop every replica before changing these (a replica killed without stopping is forgotten ${LIVE_WITHIN_MS / 1000} s after its last sign of life)`,
      details: { sibling: other.id, differences: differences(other) },
    });
  }
  const timer = setInterval(() => {
    replicas
      .beat(id)
      .catch((error: unknown) => logger.warn({ error: String(error) }, "replica heartbeat failed"));
  }, BEAT_MS);
  timer.unref();
  return {
    async leave() {
      clearInterval(timer);
      await replicas
        .leave(id)
        .catch((error: unknown) => logger.warn({ error: String(error) }, "replica unregistration failed"));
    },
  };
}
