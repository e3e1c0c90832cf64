import type { Migration } from "../ledger/index.js";

/**
 * The buyer's spend store schema. Versions start at 101 so the buyer's tables can share a
 * PostgreSQL database (and its `schema_migrations`) with a gateway's ledger without colliding.
 * Never edit an entry that has shipped: append a new one. Money is NUMERIC(78,0).
 */
export const spendMigrations: readonly Migration[] = [
  {
    version: 101,
    name: "buyer_spend_reservations",
    sql: `
CREATE TABLE spend_reservations (
  id              TEXT PRIMARY KEY,
  day             DATE NOT NULL,
  origin          TEXT NOT NULL,
  url             TEXT NOT NULL,
  payer           TEXT NOT NULL,
  scheme          TEXT NOT NULL,
  network         TEXT NOT NULL,
  asset           TEXT NOT NULL,
  pay_to          TEXT NOT NULL,
  model           TEXT,
  max_atomic      NUMERIC(78,0) NOT NULL CHECK (max_atomic >= 0),
  expected_atomic NUMERIC(78,0),
  charged_atomic  NUMERIC(78,0),
  -- What counts against the caps now: the maximum while reserved, the charge once settled, 0 once released.
  counted_atomic  NUMERIC(78,0) NOT NULL CHECK (counted_atomic >= 0),
  status          TEXT NOT NULL DEFAULT 'reserved'
                  CHECK (status IN ('reserved', 'settled', 'released', 'expired')),
  nonce           TEXT,
  deadline        TIMESTAMPTZ,
  transaction     TEXT,
  note            TEXT,
  created_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at      TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX spend_reservations_day_idx ON spend_reservations (day, origin);
CREATE INDEX spend_reservations_open_idx ON spend_reservations (deadline) WHERE status = 'reserved';
`,
  },
  {
    version: 102,
    name: "buyer_disputes",
    sql: `
CREATE TABLE disputes (
  id               BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  reservation_id   TEXT NOT NULL REFERENCES spend_reservations (id),
  origin           TEXT NOT NULL,
  reason           TEXT NOT NULL,
  charged_atomic   NUMERIC(78,0) NOT NULL,
  justified_atomic NUMERIC(78,0),
  max_atomic       NUMERIC(78,0) NOT NULL,
  transaction      TEXT,
  network          TEXT,
  details          JSONB NOT NULL DEFAULT '{}',
  status           TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
  created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
  resolved_at      TIMESTAMPTZ
);
CREATE INDEX disputes_open_idx ON disputes (created_at) WHERE status = 'open';
`,
  },
  {
    version: 103,
    name: "buyer_channels",
    sql: `
-- One row per batch-settlement channel this buyer opened: its config, the client's view of it
-- (the official client's ClientChannelStorage record) and what was deposited into it.
CREATE TABLE buyer_channels (
  channel_id          TEXT PRIMARY KEY,
  payer               TEXT NOT NULL,
  origin              TEXT NOT NULL,
  url                 TEXT NOT NULL,
  network             TEXT NOT NULL,
  asset               TEXT NOT NULL,
  pay_to              TEXT NOT NULL,
  receiver_authorizer TEXT NOT NULL,
  withdraw_delay      INTEGER NOT NULL,
  salt                TEXT NOT NULL,
  slot                INTEGER NOT NULL,
  config              JSONB NOT NULL,
  deposited_atomic    NUMERIC(78,0) NOT NULL DEFAULT 0,
  deposits            INTEGER NOT NULL DEFAULT 0,
  client_context      JSONB,
  created_at          TIMESTAMPTZ NOT NULL DEFAULT now(),
  updated_at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX buyer_channels_origin_idx ON buyer_channels (origin);
ALTER TABLE spend_reservations ADD COLUMN channel_id TEXT;
ALTER TABLE spend_reservations ADD COLUMN deposit_atomic NUMERIC(78,0);
`,
  },
  {
    version: 104,
    name: "buyer_signed_receipts",
    sql: `
-- The seller's signed receipts of a settled payment, and what checking them found.
ALTER TABLE spend_reservations
  ADD COLUMN receipt_status  TEXT CHECK (receipt_status IN ('verified', 'unconfirmed', 'invalid')),
  ADD COLUMN receipt_signer  TEXT,
  ADD COLUMN signed_receipts JSONB;
`,
  },
  {
    version: 105,
    name: "buyer_provider_latency",
    sql: `
-- Time to first token per provider (URL origin) and model, as the buyer measured its own paid
-- requests: a smoothed figure (exponentially weighted moving average) and how many samples made it.
CREATE TABLE provider_latency (
  origin      TEXT NOT NULL,
  model       TEXT NOT NULL,
  ttft_ms     DOUBLE PRECISION NOT NULL CHECK (ttft_ms >= 0),
  samples     INTEGER NOT NULL CHECK (samples > 0),
  updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
  PRIMARY KEY (origin, model)
);
`,
  },
  {
    version: 106,
    name: "buyer_channel_voucher_base",
    sql: `
-- The seller's charged cumulative amount a voucher was signed on: a voucher whose receipt never came
-- is reconciled from the channel's later state (its charge = the next known cumulative - this base).
ALTER TABLE spend_reservations ADD COLUMN channel_base_atomic NUMERIC(78,0);
CREATE INDEX spend_reservations_open_channel_idx ON spend_reservations (channel_id)
  WHERE status = 'reserved' AND channel_id IS NOT NULL;
`,
  },
  {
    version: 107,
    name: "buyer_channel_leases",
    sql: `
-- Which process holds a slot of a channel pool: buyers sharing one spend store take a slot only by
-- winning its lease, and a lease whose holder stopped renewing it lapses at expires_at.
CREATE TABLE buyer_channel_leases (
  pool_key   TEXT NOT NULL,
  slot       INTEGER NOT NULL,
  holder     TEXT NOT NULL,
  expires_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (pool_key, slot)
);
`,
  },
  {
    version: 108,
    name: "buyer_planned_openings",
    sql: `
-- A channel's opening deposit a buyer process planned and has not finished: processes sharing one
-- spend store count each other's against maxEscrow and the per-provider bound. A row counts while the
-- lease of the pool slot that plans it (pool_key, slot, holder) is held.
CREATE TABLE buyer_planned_openings (
  pool_key      TEXT NOT NULL,
  slot          INTEGER NOT NULL,
  holder        TEXT NOT NULL,
  payer         TEXT NOT NULL,
  origin        TEXT NOT NULL,
  channel_id    TEXT NOT NULL,
  amount_atomic NUMERIC(78,0) NOT NULL CHECK (amount_atomic >= 0),
  PRIMARY KEY (pool_key, slot, holder)
);
`,
  },
];
