/** One numbered schema change; applied once and recorded in `schema_migrations`. */
export type Migration = {
  version: number;
  name: string;
  sql: string;
};

/**
 * The ledger's schema history, oldest first. Never edit an entry that has shipped: append a new one.
 * Money is NUMERIC(78,0) (any uint256 fits) and crosses into TypeScript as text, then bigint.
 */
export const ledgerMigrations: readonly Migration[] = [
  {
    version: 1,
    name: "payments",
    sql: `
CREATE TABLE payments (
  id                BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  network           TEXT NOT NULL,
  payer             TEXT NOT NULL CHECK (payer = lower(payer)),
  nonce             TEXT NOT NULL CHECK (nonce ~ '^(0|[1-9][0-9]*)$'),
  scheme            TEXT NOT NULL,
  model             TEXT NOT NULL,
  route             TEXT NOT NULL,
  asset             TEXT NOT NULL,
  pay_to            TEXT NOT NULL,
  max_atomic        NUMERIC(78,0) NOT NULL CHECK (max_atomic >= 0),
  prompt_tokens     INTEGER CHECK (prompt_tokens >= 0),
  completion_tokens INTEGER CHECK (completion_tokens >= 0),
  charge_atomic     NUMERIC(78,0),
  transaction       TEXT,
  status            TEXT NOT NULL DEFAULT 'claimed'
                    CHECK (status IN ('claimed', 'serving', 'metered', 'settling',
                                      'settled', 'zero', 'debt', 'failed')),
  error             TEXT,
  payload           JSONB NOT NULL,
  requirements      JSONB NOT NULL,
  created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
  settled_at        TIMESTAMPTZ,
  CONSTRAINT payments_authorization_key UNIQUE (network, payer, nonce),
  -- upto: the actual charge is never negative and never above the authorized maximum.
  CONSTRAINT payments_charge_within_max CHECK (charge_atomic >= 0 AND charge_atomic <= max_atomic)
);
-- hasOpenDebt runs on every request: a partial index holds only the debts.
CREATE INDEX payments_open_debt_idx ON payments (network, payer) WHERE status = 'debt';
CREATE INDEX payments_pending_idx ON payments (id)
  WHERE status IN ('claimed', 'serving', 'metered', 'settling');
CREATE INDEX payments_model_idx ON payments (model);
`,
  },
  {
    version: 2,
    name: "settlements",
    sql: `
CREATE TABLE settlements (
  id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  network       TEXT NOT NULL,
  payer         TEXT NOT NULL CHECK (payer = lower(payer)),
  nonce         TEXT NOT NULL CHECK (nonce ~ '^(0|[1-9][0-9]*)$'),
  status        TEXT NOT NULL DEFAULT 'in_flight' CHECK (status IN ('in_flight', 'succeeded', 'failed')),
  amount_atomic NUMERIC(78,0) NOT NULL CHECK (amount_atomic >= 0),
  transaction   TEXT,
  result        JSONB,
  created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
  completed_at  TIMESTAMPTZ,
  CONSTRAINT settlements_authorization_key UNIQUE (network, payer, nonce)
);
CREATE INDEX settlements_in_flight_idx ON settlements (id) WHERE status = 'in_flight';
`,
  },
  {
    version: 3,
    name: "channels",
    sql: `
CREATE TABLE channels (
  channel_id             TEXT PRIMARY KEY CHECK (channel_id = lower(channel_id)),
  network                TEXT NOT NULL,
  payer                  TEXT NOT NULL CHECK (payer = lower(payer)),
  receiver               TEXT NOT NULL,
  token                  TEXT NOT NULL,
  config                 JSONB NOT NULL,
  -- What this gateway charged in total, and the payer's latest voucher covering it.
  charged_atomic         NUMERIC(78,0) NOT NULL DEFAULT 0 CHECK (charged_atomic >= 0),
  signed_max_atomic      NUMERIC(78,0) NOT NULL DEFAULT 0,
  signature              TEXT NOT NULL DEFAULT '0x',
  -- The last on-chain state seen.
  balance_atomic         NUMERIC(78,0) NOT NULL DEFAULT 0,
  total_claimed_atomic   NUMERIC(78,0) NOT NULL DEFAULT 0,
  withdraw_requested_at  BIGINT NOT NULL DEFAULT 0,
  refund_nonce           NUMERIC(78,0) NOT NULL DEFAULT 0,
  onchain_synced_at      BIGINT,
  -- Claimed funds swept to the receiver by a settle, and deposits and refunds seen here.
  settled_atomic         NUMERIC(78,0) NOT NULL DEFAULT 0,
  deposited_atomic       NUMERIC(78,0) NOT NULL DEFAULT 0,
  refunded_atomic        NUMERIC(78,0) NOT NULL DEFAULT 0,
  last_request_at        BIGINT NOT NULL DEFAULT 0,
  -- The one request in flight on the channel, if any.
  pending_id             TEXT,
  pending_max_atomic     NUMERIC(78,0),
  pending_expires_at     BIGINT,
  created_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at             TIMESTAMPTZ NOT NULL DEFAULT now(),
  -- A voucher never covers less than what was charged on it.
  CONSTRAINT channels_charge_within_voucher CHECK (charged_atomic <= signed_max_atomic)
);
CREATE INDEX channels_unclaimed_idx ON channels (network, receiver, token)
  WHERE charged_atomic > total_claimed_atomic;
`,
  },
  {
    version: 4,
    name: "payments_request_id",
    sql: `
-- The gateway's request id (x-request-id), so one id leads from the client's answer to the logs and this row.
ALTER TABLE payments ADD COLUMN request_id TEXT;
CREATE INDEX payments_request_id_idx ON payments (request_id) WHERE request_id IS NOT NULL;
`,
  },
  {
    version: 5,
    name: "payments_usage_units",
    sql: `
-- Usage per unit (input_tokens, cached_input_tokens, output_tokens, reasoning_tokens, images,
-- compute_ms, output_bytes, requests): what the charge was computed from. prompt_tokens and
-- completion_tokens stay as the token totals.
ALTER TABLE payments ADD COLUMN usage JSONB;
UPDATE payments
   SET usage = jsonb_build_object('input_tokens', prompt_tokens, 'output_tokens', completion_tokens)
 WHERE prompt_tokens IS NOT NULL AND completion_tokens IS NOT NULL;
`,
  },
  {
    version: 6,
    name: "channels_chain",
    sql: `
-- A channel id names a channel on one chain only: a local devnet started afresh keeps its chain id, and the
-- same payer, receiver and salt give the same id on it, for a new channel. So each network's channels are
-- bound to one chain, named by its block-0 hash, and each row records the chain it was recorded on.
CREATE TABLE channel_chains (
  network       TEXT PRIMARY KEY,
  genesis_hash  TEXT NOT NULL CHECK (genesis_hash ~ '^0x[0-9a-f]{64}$'),
  bound_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
ALTER TABLE channels ADD COLUMN genesis_hash TEXT;
-- Channels of a chain that is gone (a devnet that was stopped), moved out of the way whole, voucher and all.
-- payments_through_id: every payment row up to this id was made before the move, on the chain gone.
CREATE TABLE channels_set_aside (
  id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  channel_id           TEXT NOT NULL,
  network              TEXT NOT NULL,
  genesis_hash         TEXT,
  row                  JSONB NOT NULL,
  payments_through_id  BIGINT NOT NULL DEFAULT 0,
  reason               TEXT NOT NULL,
  set_aside_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX channels_set_aside_channel_idx ON channels_set_aside (network, channel_id);
`,
  },
  {
    version: 7,
    name: "charge_voucher_function",
    sql: `
-- A voucher request answered as JSON, finished in one call: its whole payment row inserted (settled or
-- zero) and its channel's charge written (charged, the latest voucher, the request's time). A function's
-- statements are planned once per connection, where the same statement sent as text is planned on every
-- call. Returns 0 and writes nothing when the row is not inserted (its authorization is held already, or
-- the charge is above its maximum); raises no_data_found (P0002) when the channel is not stored, which
-- undoes the row too. The PGlite ledger calls it; on PostgreSQL a charge is written under the channel's
-- lock in a transaction of its own statements, and the function is not called.
CREATE FUNCTION tollgate_charge_voucher_row(
  p_id BIGINT, p_network TEXT, p_payer TEXT, p_nonce TEXT, p_scheme TEXT, p_model TEXT, p_route TEXT,
  p_asset TEXT, p_pay_to TEXT, p_max_atomic NUMERIC, p_payload JSONB, p_requirements JSONB, p_request_id TEXT,
  p_status TEXT, p_charge_atomic NUMERIC, p_prompt_tokens INTEGER, p_completion_tokens INTEGER, p_usage JSONB,
  p_channel_id TEXT, p_charged_atomic NUMERIC, p_signed_max_atomic NUMERIC, p_signature TEXT,
  p_last_request_at BIGINT
) RETURNS INTEGER LANGUAGE plpgsql AS $fn$
DECLARE
  written INTEGER;
BEGIN
  INSERT INTO payments (id, network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic, payload,
                        requirements, request_id, status, charge_atomic, prompt_tokens, completion_tokens,
                        usage, settled_at)
  OVERRIDING SYSTEM VALUE
  SELECT p_id, p_network, p_payer, p_nonce, p_scheme, p_model, p_route, p_asset, p_pay_to, p_max_atomic,
         p_payload, p_requirements, p_request_id, p_status, p_charge_atomic, p_prompt_tokens,
         p_completion_tokens, p_usage, now()
  WHERE p_charge_atomic <= p_max_atomic
  ON CONFLICT (network, payer, nonce) DO NOTHING;
  GET DIAGNOSTICS written = ROW_COUNT;
  IF written = 0 THEN
    RETURN 0;
  END IF;
  UPDATE channels
     SET charged_atomic = p_charged_atomic, signed_max_atomic = p_signed_max_atomic, signature = p_signature,
         last_request_at = p_last_request_at, updated_at = now()
   WHERE channel_id = p_channel_id;
  GET DIAGNOSTICS written = ROW_COUNT;
  IF written = 0 THEN
    RAISE EXCEPTION 'channel % is not stored', p_channel_id USING ERRCODE = 'P0002';
  END IF;
  RETURN 1;
END
$fn$;
`,
  },
  {
    version: 8,
    name: "channel_shortfall_index",
    sql: `
-- A channel whose escrow holds less than was charged on it (its payer withdrew before the charges were
-- claimed) makes its payer owe: the debt check of every request looks for one, through this index.
CREATE INDEX channels_short_idx ON channels (network, payer) WHERE charged_atomic > balance_atomic;
`,
  },
  {
    version: 9,
    name: "debt_blocks_payer",
    sql: `
-- A debt the payer did not cause (its authorization lapsed while the gateway, or its facilitator, could
-- not settle it) stays owed on the books but does not refuse its payer.
ALTER TABLE payments ADD COLUMN debt_blocks_payer BOOLEAN NOT NULL DEFAULT TRUE;
DROP INDEX payments_open_debt_idx;
CREATE INDEX payments_open_debt_idx ON payments (network, payer) WHERE status = 'debt' AND debt_blocks_payer;
`,
  },
  {
    version: 10,
    name: "settled_at_index",
    sql: `
-- Settlements booked in the last minutes are read back from the chain once they are deep enough.
CREATE INDEX payments_settled_at_idx ON payments (settled_at) WHERE status = 'settled';
`,
  },
  {
    version: 11,
    name: "payer_quota_uses",
    sql: `
-- What each payer had the seller pay for (small deposits, refunds, sponsored approvals), counted against
-- its limits by every replica and across restarts.
CREATE TABLE payer_quota_uses (
  id         TEXT PRIMARY KEY,
  kind       TEXT NOT NULL,
  network    TEXT NOT NULL,
  payer      TEXT NOT NULL CHECK (payer = lower(payer)),
  used_at_ms BIGINT NOT NULL
);
CREATE INDEX payer_quota_uses_payer_idx ON payer_quota_uses (kind, network, payer, used_at_ms);
`,
  },
  {
    version: 12,
    name: "gateway_replicas",
    sql: `
-- The gateways running on a shared database and the terms they take money on (payTo, asset, channels):
-- a replica whose terms differ from a live sibling's is refused at start. A row is live while its
-- gateway refreshes seen_at (by the database's clock).
CREATE TABLE gateway_replicas (
  id TEXT PRIMARY KEY,
  network TEXT NOT NULL,
  terms JSONB NOT NULL,
  started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
  seen_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
`,
  },
  {
    version: 13,
    name: "payer_claim_indexes",
    sql: `
-- Every claim within a payer's funds sums what the payer's payments in flight and its debts reserve, and
-- what it had settled since its funds were read: indexes holding only those rows keep a claim's cost
-- flat however many payments the payer made before (a full scan of the payer's rows grew with each).
CREATE INDEX payments_payer_reserving_idx ON payments (network, payer)
  WHERE status IN ('claimed', 'serving', 'metered', 'settling', 'debt');
CREATE INDEX payments_payer_settled_idx ON payments (network, payer, settled_at) WHERE status = 'settled';
`,
  },
];
