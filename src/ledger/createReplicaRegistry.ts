import type { ReplicaRecord, ReplicaRegistry } from "./ReplicaRegistry.js";
import type { SqlClient } from "./SqlClient.js";

/** The registry of the gateways sharing the database behind `sql`; does nothing on a database one process holds alone. */
export function createReplicaRegistry(sql: SqlClient): ReplicaRegistry {
  const alone = sql.serializesStatements === true;
  // What `beat` registers again if a sibling forgot this gateway (it was not seen for too long).
  const joined = new Map<string, { network: string; terms: Record<string, string> }>();
  return {
    async join({ id, network, terms, liveWithinMs, accept }) {
      if (alone) return { joined: accept([]), siblings: [] };
      return sql.transaction(async (tx) => {
        await tx.query("SELECT pg_advisory_xact_lock(hashtext('tollgate:gateway-replicas'))");
        await tx.query("DELETE FROM gateway_replicas WHERE seen_at < now() - $1 * interval '1 millisecond'", [
          liveWithinMs,
        ]);
        const rows = await tx.query<{ id: unknown; terms: unknown; seen_ms_ago: unknown }>(
          `SELECT id, terms, (extract(epoch FROM now() - seen_at) * 1000)::float8 AS seen_ms_ago
           FROM gateway_replicas WHERE network = $1 AND id <> $2 ORDER BY started_at`,
          [network, id],
        );
        const siblings: ReplicaRecord[] = rows.map((row) => ({
          id: String(row.id),
          terms: (typeof row.terms === "string" ? JSON.parse(row.terms) : row.terms) as Record<
            string,
            string
          >,
          seenMsAgo: Number(row.seen_ms_ago),
        }));
        if (!accept(siblings)) return { joined: false, siblings };
        await tx.query(
          `INSERT INTO gateway_replicas (id, network, terms) VALUES ($1, $2, $3::jsonb)
           ON CONFLICT (id) DO UPDATE SET terms = EXCLUDED.terms, seen_at = now()`,
          [id, network, JSON.stringify(terms)],
        );
        joined.set(id, { network, terms });
        return { joined: true, siblings };
      });
    },
    async beat(id) {
      const known = joined.get(id);
      if (alone || !known) return;
      await sql.query(
        `INSERT INTO gateway_replicas (id, network, terms) VALUES ($1, $2, $3::jsonb)
         ON CONFLICT (id) DO UPDATE SET seen_at = now()`,
        [id, known.network, JSON.stringify(known.terms)],
      );
    },
    async leave(id) {
      if (alone || !joined.delete(id)) return;
      await sql.query("DELETE FROM gateway_replicas WHERE id = $1", [id]);
    },
  };
}
