import { createPgliteClient } from "./src/ledger/createPgliteClient.ts";
import { applyMigrations } from "./src/ledger/applyMigrations.ts";
import { channelRowWrite } from "./src/ledger/index.ts";
const sql: any = await createPgliteClient({});
await applyMigrations(sql, {});
await sql.query(`INSERT INTO channels (channel_id, network, payer, receiver, token, config, charged_atomic, signed_max_atomic, signature, balance_atomic, total_claimed_atomic, withdraw_requested_at, refund_nonce, onchain_synced_at, settled_atomic, deposited_atomic, refunded_atomic, last_request_at)
 VALUES ('c1','n','p','r','t','{}',0,0,'0x',1000000000,0,0,0,0,0,0,0,0)`);
async function time(name: string, f: (i: number) => Promise<unknown>) {
  const ts: number[] = [];
  for (let i = 1; i <= 600; i++) { const t0 = performance.now(); await f(i); ts.push(performance.now() - t0); }
  const s = ts.slice(100).sort((a, b) => a - b);
  console.log(name.padEnd(34), "p50", s[250].toFixed(3), "p90", s[450].toFixed(3));
}
const payload = { x402Version: 2, payload: { type: "voucher", voucher: { channelId: "0x" + "ab".repeat(32), maxClaimableAmount: "123", signature: "0x" + "ab".repeat(65) } }, accepted: { scheme: "batch-settlement", network: "eip155:84532", amount: "1593" } };
const claim = (i: number) => ({ network: "eip155:84532", payer: "0x" + "11".repeat(20), nonce: String(BigInt(i) * 987654321987654321n), scheme: "batch-settlement", model: "m", route: "chat", asset: "0x" + "33".repeat(20), payTo: "0x" + "22".repeat(20), maxAtomic: 1593n, paymentPayload: payload, paymentRequirements: payload.accepted, requestId: "req-" + i });
const changes = (i: number) => [String(7 * i), String(7 * i + 100), "0x" + "ab".repeat(65), String(Date.now())];
// current: CTE
await time("cte (current shape)", (i) => {
  const also = channelRowWrite(i, { usage: { promptTokens: 20, completionTokens: 16 }, chargeAtomic: 7n }, claim(i));
  const first = also.params.length + 1;
  return sql.query(`WITH also AS (${also.text}),
    channel AS (UPDATE channels SET charged_atomic = $${first + 1}::numeric, signed_max_atomic = $${first + 2}::numeric, signature = $${first + 3}::text, last_request_at = $${first + 4}::bigint, updated_at = now() WHERE channel_id = $${first} AND EXISTS (SELECT 1 FROM also) RETURNING channel_id)
    SELECT CASE WHEN (SELECT count(*) FROM also) = 0 THEN 0 ELSE 1 / (SELECT count(*) FROM channel)::int END AS written`, [...also.params, "c1", ...changes(i)]);
});
await sql.exec(`CREATE FUNCTION charge_fn(p_id bigint, p_network text, p_payer text, p_nonce text, p_scheme text, p_model text, p_route text, p_asset text, p_pay_to text, p_max numeric, p_payload jsonb, p_req jsonb, p_request_id text,
  p_status text, p_charge numeric, p_prompt int, p_completion int, p_usage jsonb, p_error text,
  p_channel text, p_charged numeric, p_signed numeric, p_signature text, p_last bigint) RETURNS int LANGUAGE plpgsql AS $$
DECLARE n int;
BEGIN
  INSERT INTO payments (id, network, payer, nonce, scheme, model, route, asset, pay_to, max_atomic, payload, requirements, request_id, status, charge_atomic, prompt_tokens, completion_tokens, usage, error, settled_at)
  OVERRIDING SYSTEM VALUE
  SELECT p_id, p_network, p_payer, p_nonce, p_scheme, p_model, p_route, p_asset, p_pay_to, p_max, p_payload, p_req, p_request_id, p_status, p_charge, p_prompt, p_completion, p_usage, p_error, CASE WHEN p_status = 'failed' THEN NULL ELSE now() END
  WHERE p_charge IS NULL OR p_charge <= p_max
  ON CONFLICT (network, payer, nonce) DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN RETURN 0; END IF;
  UPDATE channels SET charged_atomic = p_charged, signed_max_atomic = p_signed, signature = p_signature, last_request_at = p_last, updated_at = now() WHERE channel_id = p_channel;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n = 0 THEN RAISE EXCEPTION 'not stored'; END IF;
  RETURN 1;
END $$`);
await time("plpgsql function", (i) => {
  const also = channelRowWrite(100000 + i, { usage: { promptTokens: 20, completionTokens: 16 }, chargeAtomic: 7n }, claim(100000 + i));
  const p = also.params; // claimParams (12), finish (6), id
  return sql.query(`SELECT charge_fn($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11::jsonb, $12::jsonb, $13, $14, $15::numeric, $16::int, $17::int, $18::jsonb, $19, $20, $21::numeric, $22::numeric, $23, $24::bigint) AS written`,
    [p[18], ...p.slice(0, 18), "c1", ...changes(i)]);
});
await time("cte (current shape) again", (i) => {
  const also = channelRowWrite(200000 + i, { usage: { promptTokens: 20, completionTokens: 16 }, chargeAtomic: 7n }, claim(200000 + i));
  const first = also.params.length + 1;
  return sql.query(`WITH also AS (${also.text}),
    channel AS (UPDATE channels SET charged_atomic = $${first + 1}::numeric, signed_max_atomic = $${first + 2}::numeric, signature = $${first + 3}::text, last_request_at = $${first + 4}::bigint, updated_at = now() WHERE channel_id = $${first} AND EXISTS (SELECT 1 FROM also) RETURNING channel_id)
    SELECT CASE WHEN (SELECT count(*) FROM also) = 0 THEN 0 ELSE 1 / (SELECT count(*) FROM channel)::int END AS written`, [...also.params, "c1", ...changes(i)]);
});
await time("plpgsql function again", (i) => {
  const also = channelRowWrite(300000 + i, { usage: { promptTokens: 20, completionTokens: 16 }, chargeAtomic: 7n }, claim(300000 + i));
  const p = also.params;
  return sql.query(`SELECT charge_fn($1::bigint, $2, $3, $4, $5, $6, $7, $8, $9, $10::numeric, $11::jsonb, $12::jsonb, $13, $14, $15::numeric, $16::int, $17::int, $18::jsonb, $19, $20, $21::numeric, $22::numeric, $23, $24::bigint) AS written`,
    [p[18], ...p.slice(0, 18), "c1", ...changes(i)]);
});
