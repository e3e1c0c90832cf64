// The usage text of each command, apart from the commands themselves: `tollgate --help` prints it
// without loading any command (each pulls in viem, x402 and more: about a second to import).

/** Usage text per `tollgate` command, in the order `--help` lists them. */
export const commandUsage = {
  dev: `tollgate dev [--port 4021] [--host 127.0.0.1] [--json] [--fresh-buyer] [--upstream URL [--upstream-key-env NAME] [--model ID]] [--data-dir .tollgate/ledger] [--tokens-per-second 50]
  Runs everything on one machine: a devnet chain, an in-process facilitator, the ledger
  (PGlite in --data-dir, where tollgate ledger looks by default; memory:// for none), and the
  gateway in front of the built-in demo backend (model tollgate-demo, --tokens-per-second) — or in front of a real OpenAI-compatible
  backend with --upstream (then --host must be loopback: devnet money is free to anyone; sell a real
  upstream with tollgate gateway on a real network). An example paid MCP server (tools summarize, per token, and
  count_tokens, $0.001 a call) answers at <gateway>/mcp over Streamable HTTP. Prints a funded buyer key to pay with; with --fresh-buyer, one holding
  test USDC only (no Permit2 approval, no native gas), whose first request pays through a
  gas-sponsored approval. Runs until Ctrl-C.`,
  gateway: `tollgate gateway --config tollgate.yaml [--port N]
  Serves the OpenAI-compatible gateway billed per token with x402 (see the README for the
  config file). Secrets come from the environment: facilitator.privateKeyEnv, each
  model's backend.apiKeyEnv, and receipts.signingKeyEnv (the key signing every settled
  response's receipts; its address is published in /v1/models). DATABASE_URL=postgres://… (or the variable named by
  ledger.databaseUrlEnv) keeps the ledger in PostgreSQL, shared by replicas; otherwise
  it is PGlite in ledger.dataDir (.tollgate/ledger).`,
  ledger: `tollgate ledger [--data-dir .tollgate/ledger] [--limit 20] [--json]
  Recent payments and totals per model (authorized vs charged, debts) from the gateway's
  ledger. While a tollgate dev or gateway holds the PGlite data dir, it is read through that
  process (its access file beside the data dir, readable by its user only). With DATABASE_URL
  set, the ledger is read in PostgreSQL instead of --data-dir.`,
  channels: `tollgate channels [--data-dir .tollgate/ledger] [--json] [--buyer [--gateway URL] [--rpc URL]]
  The payment channels (x402 batch-settlement) the gateway is paid through: payer, deposited,
  balance, charged, claimed on chain, settled to payTo, pending withdrawal; and the totals.
  Reads PostgreSQL when DATABASE_URL is set, else PGlite in --data-dir (through the running
  tollgate dev or gateway that holds it).
tollgate channels --buyer [--json] [--gateway URL] [--rpc URL]
  The buyer's payment channels (batch-settlement) from its spend store in TOLLGATE_DATA_DIR
  (default ~/.tollgate): seller, deposits, balance, charged total and what remains, with totals;
  --gateway narrows to one seller; --rpc adds what the contract holds (escrow, claimed by the
  seller, a pending withdrawal).`,
  reconcile: `tollgate reconcile [--config tollgate.yaml] [--from-block N] [--to-block N] [--rpc URL] [--data-dir DIR] [--json]
  Compares the ledger's settled payments with the chain's Transfer logs of the asset to payTo
  (network, asset, payTo and rpcUrl from the gateway config) and prints every difference.
  Exits 0 when there is none, 1 otherwise. The ledger is PostgreSQL when DATABASE_URL is set,
  else PGlite in --data-dir (default: the config's ledger.dataDir or .tollgate/ledger); a PGlite
  ledger a running gateway or tollgate dev holds is reconciled by it, with its own config.`,
  devnet: `tollgate devnet [--port 8545] [--host 127.0.0.1] [--buyers 3] [--fresh-buyers 1] [--json]
  Starts a local chain (anvil) with Permit2, the x402 upto and exact proxies, the x402
  batch-settlement contract and its deposit collectors, a test USDC
  and funded accounts. --buyers takes 1 to 50 (each with 1,000 test USDC,
  Permit2 approved, test ETH); --fresh-buyers 0 to 50 more with 1,000 test USDC
  only: no Permit2 approval and no native gas, as a new agent wallet (they pay through a
  gas-sponsored approval). Runs until Ctrl-C.`,
  facilitator: `tollgate facilitator --rpc URL --private-key KEY [--network eip155:31337] [--port 4022] [--host 127.0.0.1] [--no-rpc-batch] [--no-gas-sponsoring] [--sponsor-limit 3] [--sponsor-daily-limit N] [--erc20-approval] [--asset 0x…[,0x…]]
  Serves an x402 v2 facilitator (GET /supported, POST /verify, POST /settle, GET /health, GET /metrics,
  and POST /relay-approval and POST /release for Tollgate gateways) for the upto,
  exact and batch-settlement schemes. The key may come from TOLLGATE_FACILITATOR_KEY instead of
  the flag. /verify, /settle, /relay-approval, /release and /metrics want Authorization: Bearer <token>: the value of
  TOLLGATE_FACILITATOR_TOKEN (16 characters or more; required but on the devnet, where a random
  one is printed at start otherwise); give it to gateways as facilitator.tokenEnv (whoever can
  settle chooses an upto charge's amount).
  With DATABASE_URL=postgres://… its settlement log (one settlement per authorization) and each
  payer's sponsored approvals are kept in PostgreSQL and survive restarts; otherwise in memory. RPC calls made while others are in
  flight go out as one JSON-RPC batch; --no-rpc-batch sends each alone (for an RPC that refuses batches).
  It pays the gas of buyers' Permit2 approvals (eip2612GasSponsoring, listed in /supported), at most
  --sponsor-limit per payer and, with --sponsor-daily-limit, at most that many of all payers together
  in any 24 h (fresh wallets cost nothing to make); --no-gas-sponsoring turns that off. --erc20-approval also relays
  buyers' signed approve transactions for tokens without EIP-2612 (erc20ApprovalGasSponsoring),
  sending each buyer the gas it burns; a Tollgate gateway has it relayed before it serves the
  request (POST /relay-approval), so a buyer that spends that gas elsewhere is refused, not served. It moves only
  the tokens --asset names, by default the network's USDC (on the devnet, any token): a payment in
  another is refused (asset_not_accepted) before any transaction.`,
  pay: `tollgate pay --url URL [--method POST] [--body JSON|@file] [--header K:V]… [--policy FILE] [--private-key KEY] [--rpc URL] [--json]
  Sends one request and pays its x402 402 (upto, exact, or a voucher on a payment channel —
  batch-settlement, preferred when offered: the first payment to a seller deposits into the
  channel, up to the policy's maxDeposit) within the spending policy. The
  response body goes to stdout (a text body ending with a newline), a receipt line (maximum authorized, charged, saved,
  transaction, network) to stderr; --json prints one JSON object instead. The key comes from
  --private-key or TOLLGATE_PRIVATE_KEY, the policy from --policy or TOLLGATE_POLICY; spend is
  kept in TOLLGATE_DATA_DIR (default ~/.tollgate).
  Exit codes: 0 paid and served, 3 refused by the policy, 4 payment failed, 5 HTTP error,
  1 other failures, 2 bad usage.`,
  chat: `tollgate chat --gateway URL [--gateway URL]… --model M [--model M]… [--api chat|messages|responses] [--max-tokens N] [--policy FILE] [--private-key KEY] [--rpc URL] [--json] "prompt"
  Asks one question and streams the answer to the terminal, paying per token; ends with the
  receipt line on stderr. --api picks the API: chat (default, /v1/chat/completions), messages
  (Anthropic's /v1/messages; --max-tokens defaults to the model's listed limit) or responses
  (/v1/responses, --max-tokens as max_output_tokens). With several --gateway (chat only), lists
  their models and prices and picks the cheapest that offers one of the --model names within the
  policy, and says which and why.
  Key, policy, data directory and exit codes as for tollgate pay.`,
  spend: `tollgate spend [--json] [--policy FILE] [--serve [--host 127.0.0.1] [--port 4030]]
  Today's spend (UTC) per provider against the policy's caps, and open disputes (charges the
  usage did not justify), from the spend store in TOLLGATE_DATA_DIR (default ~/.tollgate).
  --serve keeps a live page of the same (and recent receipts) on loopback and prints its URL.`,
  receipts: `tollgate receipts verify FILE|- [--signer ADDRESS | --gateway URL] [--json]
  Checks a saved receipt and prints what it proves: the x402 receipt (offer-receipt) and
  Tollgate's usage receipt (model, usage, prices, charge, maximum, transaction), their EIP-712
  signatures, and that the charge is what the signed usage costs at the signed prices. FILE
  (or - for standard input) holds a PAYMENT-RESPONSE header (base64 or decoded JSON), a
  stream's receipt event, a spend row's or a dispute's receipts, or one signed receipt.
  --signer (or the receiptSigner that --gateway publishes in /v1/models) is the key the seller
  signs with. Exits 0 for a valid receipt, 1 for a forged, altered or overcharging one.`,
  refund: `tollgate refund --gateway URL [--url REFUND_URL] [--rpc URL] [--private-key KEY] [--json]
  Gets back what is left in the buyer's channels with that gateway: asks for a cooperative refund
  (at <gateway>/v1/channels/refund, or --url); when the seller does not answer, or --rpc shows its
  refund left the channel holding money, and --rpc is given, starts the on-chain withdrawal (the wallet pays its gas) — run again after the channel's
  withdraw delay to finish it. Key as for tollgate pay. Exits 1 when a channel's refund failed.`,
  mcp: `tollgate mcp [--gateway URL]… [--mcp-server URL]… [--policy FILE] [--private-key KEY] [--rpc URL] [--http [--port 4023] [--host 127.0.0.1]]
  An MCP server for agents, over stdio (or Streamable HTTP at /mcp with --http), with the tools
  chat (prompt, model?, max_tokens?: paid inference through the --gateway URLs, the cheapest
  within the policy), pay (one paid HTTP request), spend (today's spend and what is left under
  each cap) and list_models; with --mcp-server, also mcp_list_tools and mcp_call_tool, which
  reach that MCP server's tools and pay its paid tools (x402 MCP transport). Every payment is checked against the policy before anything is
  signed; a refusal is a tool error naming the rule and the figures. Above confirmAbove the
  person is asked through MCP elicitation; a client that cannot ask gets a refusal. Key,
  policy and spend store as for tollgate pay (the store is held while the server runs). With
  --http every request must carry Authorization: Bearer <token> (printed at start with the URL,
  or TOLLGATE_MCP_TOKEN).`,
} as const;

export type CommandName = keyof typeof commandUsage;
