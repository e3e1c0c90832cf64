/** One live gateway on a shared database, as it registered: its id and the terms it takes money on. */
export type ReplicaRecord = {
  id: string;
  terms: Record<string, string>;
  /** How long ago (ms, by the database's clock) it last showed it is alive. */
  seenMsAgo: number;
};

export type JoinReplicasParameters = {
  id: string;
  /** The CAIP-2 network this gateway bills on: only siblings on it are compared. */
  network: string;
  terms: Record<string, string>;
  /** A sibling not seen for this long (ms) is taken for stopped and forgotten. */
  liveWithinMs: number;
  /** Whether this gateway may run beside these live siblings; it registers only if so. */
  accept(siblings: readonly ReplicaRecord[]): boolean;
};

/**
 * The gateways running on one shared database (PostgreSQL replicas), so that one whose terms differ from
 * a live sibling's can be refused at start. A database one process holds alone (PGlite) has no siblings:
 * every call there does nothing.
 */
export type ReplicaRegistry = {
  /** Checks the live siblings on the network and registers this gateway, under one lock: two never join at once. */
  join(parameters: JoinReplicasParameters): Promise<{ joined: boolean; siblings: ReplicaRecord[] }>;
  /** Shows this gateway is alive (registers it again if a sibling forgot it). */
  beat(id: string): Promise<void>;
  /** Unregisters this gateway (it stops). */
  leave(id: string): Promise<void>;
};
