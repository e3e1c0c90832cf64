import { serve } from "@hono/node-server";
import type { Hono } from "hono";
import type { Registry } from "prom-client";
import {
  type Address,
  ContractFunctionExecutionError,
  createPublicClient,
  erc20Abi,
  getAddress,
  type Hex,
  HttpRequestError,
  http,
  isAddressEqual,
  type PublicClient,
  TimeoutError,
} from "viem";
import { eip2612NoncesAbi, findNetworkPreset, privateKeyAccount } from "../chain/index.js";
import { type Logger, silentLogger, TollgateError } from "../errors/index.js";
import {
  createFacilitator,
  createFacilitatorClient,
  createFacilitatorMetrics,
  type FacilitatorClient,
  type FacilitatorEventListener,
  facilitatorRelaysApprovals,
  gasSponsoringExtensionKeys,
  settlementStoreFromLog,
  type TollgateFacilitator,
} from "../facilitator/index.js";
import { type Ledger, openLedger, openPostgresLedger } from "../ledger/index.js";
import { countTextTokensChunked, USDC_DECIMALS } from "../pricing/index.js";
import { assertAssetDomain } from "./assertAssetDomain.js";
import { assertBackendBaseUrls } from "./assertBackendBaseUrls.js";
import { assertRpcChain } from "./assertRpcChain.js";
import {
  type BillingEvent,
  type BillingEventListener,
  combineBillingListeners,
  safeBillingEmitter,
} from "./BillingEvent.js";
import {
  bindLedgerToChain,
  type GatewayChannels,
  refuseStrandedChannels,
  startChannels,
} from "./channels/index.js";
import { type Billing, createBilling } from "./createBilling.js";
import { createGatewayApp } from "./createGatewayApp.js";
import { createPaymentRecovery, type PaymentRecovery } from "./createPaymentRecovery.js";
import { createReceiptSigner } from "./createReceiptSigner.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import type { GatewayConfig } from "./gatewayConfig.js";
import { joinReplicas } from "./joinReplicas.js";
import { createGatewayMetrics } from "./operator/createGatewayMetrics.js";
import { dashboardChannelsOf } from "./operator/gatewayDashboard.js";
import { mountOperatorRoutes } from "./operator/mountOperatorRoutes.js";
import { recoveryTimingProblems } from "./recoveryTimingProblems.js";
import { modelsWithoutOffer } from "./unofferedModels.js";

export type StartGatewayParameters = {
  config: GatewayConfig;
  logger?: Logger;
  /** An open ledger to use instead of opening `config.ledger.dataDir`. */
  ledger?: Ledger;
  /** A facilitator to use instead of the one the config describes. */
  facilitator?: FacilitatorLike;
  /** Receipt polling of the in-process facilitator (ms). */
  pollingIntervalMs?: number;
  /** Bounds on the facilitator's verify and settle (ms), over the config's `timeouts`; see `createBilling`. */
  verifyTimeoutMs?: number;
  settleTimeoutMs?: number;
  /** Receives every request's billing events, beside the gateway's own metrics. */
  onBillingEvent?: BillingEventListener;
  /** Receives the in-process facilitator's events, beside its metrics. */
  onFacilitatorEvent?: FacilitatorEventListener;
  /** Adds routes of your own to the gateway's app, with its billing (e.g. paid MCP tools at `/mcp`). */
  routes?: (app: Hono, billing: Billing) => void;
};

/** A running gateway. */
export type Gateway = {
  url: string;
  port: number;
  billing: Billing;
  ledger: Ledger;
  facilitator: FacilitatorLike;
  /** The recovery of pending payments (ran once before listening; then every `recovery.intervalSeconds`). */
  recovery: PaymentRecovery;
  /** Payment channels, when the config has `channels`. */
  channels?: GatewayChannels;
  /** The gateway's Prometheus registry (served at `/metrics` unless `metrics.enabled` is false). */
  metrics: Registry;
  /** `<url>/metrics`, when served. */
  metricsUrl: string | undefined;
  /** `<url>/dashboard?token=…`, when the dashboard is on. */
  dashboardUrl: string | undefined;
  close(): Promise<void>;
};

/**
 * Starts the gateway: its facilitator (in-process with a key, or a remote one by URL), its
 * ledger, and the HTTP server.
 */
export async function startGateway({
  config,
  logger = silentLogger,
  ledger: givenLedger,
  facilitator: givenFacilitator,
  pollingIntervalMs,
  verifyTimeoutMs = config.timeouts.verifySeconds * 1000,
  settleTimeoutMs = config.timeouts.settleSeconds * 1000,
  onBillingEvent,
  onFacilitatorEvent,
  routes,
}: StartGatewayParameters): Promise<Gateway> {
  const preset = findNetworkPreset(config.network);
  if (!preset)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `unknown network ${config.network}`,
    });
  const asset = (config.asset ?? preset.usdc) as Address;
  // Before anything opens: a base URL without the /v1 its backend answers under is refused here.
  await assertBackendBaseUrls({ models: config.models, logger });
  const ledger =
    givenLedger ??
    (config.ledger.databaseUrl
      ? await openPostgresLedger({
          connectionString: config.ledger.databaseUrl,
          schema: config.ledger.schema,
          logger,
        })
      : await openLedger({ dataDir: config.ledger.dataDir, logger }));
  // A ledger opened here is not left open (and its data dir locked) by a gateway that did not start.
  const closeOwnLedger = async () => {
    if (!givenLedger) await ledger.close().catch(() => undefined);
  };
  const metrics = createGatewayMetrics({ insights: ledger.insights });
  const facilitatorMetrics = createFacilitatorMetrics({ registry: metrics.registry });
  const facilitator =
    givenFacilitator ??
    (await createConfiguredFacilitator(
      config,
      preset.network,
      preset.defaultRpcUrl,
      ledger,
      logger,
      pollingIntervalMs,
      (event) => {
        facilitatorMetrics(event);
        onFacilitatorEvent?.(event);
      },
    ));
  const supported = await facilitator.getSupported().catch(async (cause) => {
    await closeOwnLedger();
    throw new TollgateError({
      code: "TOLLGATE_FACILITATOR_UNAVAILABLE",
      shortMessage: "the facilitator did not answer /supported",
      cause,
    });
  });
  if (!givenFacilitator && "url" in config.facilitator) {
    const refused = await facilitatorRefusesToken(config.facilitator.url, config.facilitator.token);
    if (refused) {
      await closeOwnLedger();
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `the facilitator at ${config.facilitator.url} refuses ${config.facilitator.token ? "the token given" : "a gateway without a token"} (HTTP ${refused}): set facilitator.tokenEnv to the variable holding the token tollgate facilitator printed (TOLLGATE_FACILITATOR_TOKEN)`,
      });
    }
  }
  const uptoKind = supported.kinds.find((kind) => kind.scheme === "upto" && kind.network === preset.network);
  const facilitatorAddress = uptoKind?.extra?.facilitatorAddress as Address | undefined;
  if (!facilitatorAddress) {
    const unpayable = modelsWithoutOffer(config.models, config.schemes, {
      channels: config.channels !== undefined,
      upto: false,
    });
    if (unpayable.length > 0) {
      await closeOwnLedger();
      const where = !givenFacilitator && "url" in config.facilitator ? ` at ${config.facilitator.url}` : "";
      const uptoNetworks = supported.kinds
        .filter((kind) => kind.scheme === "upto")
        .map((kind) => kind.network);
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `config key facilitator: the facilitator${where} settles no upto on ${preset.network} (upto on: ${uptoNetworks.join(", ") || "none"}), and upto is the only way to pay model ${unpayable.join(", ")}: every request would be refused; use a facilitator of ${preset.network}${preset.publicFacilitatorUrl ? ` (e.g. ${preset.publicFacilitatorUrl})` : ""}, or check network`,
        details: { field: "facilitator", models: unpayable },
      });
    }
    logger.warn(
      { network: preset.network },
      "the facilitator does not offer upto on this network; only exact prices are offered",
    );
  }

  // A remote facilitator's /supported decides which gas-sponsoring extensions the 402s declare.
  let gasSponsoring: string[] = gasSponsoringExtensionKeys.filter((key) =>
    supported.extensions?.includes(key),
  );

  const rpcUrl = config.rpcUrl ?? preset.defaultRpcUrl;
  const chain: PublicClient | undefined =
    "signer" in facilitator
      ? (facilitator as TollgateFacilitator).signer.publicClient
      : rpcUrl
        ? (createPublicClient({
            transport: http(rpcUrl, { timeout: 10_000, retryCount: 1 }),
          }) as PublicClient)
        : undefined;
  // A token without EIP-2612 cannot take a permit: declaring eip2612GasSponsoring would make buyers
  // (the official client included) try to sign one and fail, instead of using erc20ApprovalGasSponsoring.
  if (
    gasSponsoring.includes("eip2612GasSponsoring") &&
    chain &&
    !(await hasEip2612(chain, getAddress(asset)))
  ) {
    gasSponsoring = gasSponsoring.filter((key) => key !== "eip2612GasSponsoring");
  }
  logger.info({ gasSponsoring }, "gas sponsoring the facilitator supports for this asset");
  if (chain)
    await assertRpcChain({
      chain,
      network: preset.network,
      chainId: preset.chainId,
      rpcUrl,
      logger,
    }).catch(async (error: unknown) => {
      await closeOwnLedger();
      throw error;
    });
  // Every "$" amount of the config ($0.50 per 1M tokens, a deposit, a cap) is counted in 6-decimal
  // units, as USDC is: in a token of other decimals it would be a price off by powers of ten.
  await assertUsdcDecimals({
    chain,
    asset: getAddress(asset),
    rpcUrl,
    presetUsdc: preset.usdc,
  }).catch(async (error: unknown) => {
    await closeOwnLedger();
    throw error;
  });
  if (chain)
    await assertAssetDomain({
      chain,
      asset: getAddress(asset),
      domain: config.assetDomain ?? preset.usdcDomain,
      configured: config.assetDomain !== undefined,
    }).catch(async (error: unknown) => {
      await closeOwnLedger();
      throw error;
    });
  const terms = {
    network: preset.network,
    asset: getAddress(asset),
    assetDomain: config.assetDomain ?? preset.usdcDomain,
    payTo: getAddress(config.payTo),
    maxTimeoutSeconds: config.maxTimeoutSeconds,
    facilitatorAddress: facilitatorAddress ? getAddress(facilitatorAddress) : undefined,
    gasSponsoring,
  };
  const billingEvents = safeBillingEmitter(
    combineBillingListeners(metrics.onBillingEvent, onBillingEvent),
    logger,
  );
  // Replicas on one database must take money on the same terms: one on other terms is refused before it runs.
  const replica = await joinReplicas({
    replicas: ledger.replicas,
    network: terms.network,
    terms: {
      payTo: terms.payTo,
      asset: terms.asset,
      channels: channelsTermOf(config),
      withdrawDelaySeconds: config.channels ? String(config.channels.withdrawDelaySeconds) : "off",
    },
    logger,
  }).catch(async (error: unknown) => {
    await closeOwnLedger();
    throw error;
  });
  const channels = await openChannels(config, terms, ledger, facilitator, chain, logger, billingEvents).catch(
    async (error: unknown) => {
      await replica.leave();
      await closeOwnLedger();
      throw error;
    },
  );
  const billing = createBilling({
    terms,
    channels: channels?.billing,
    schemes: config.schemes,
    models: config.models,
    facilitator,
    ledger: ledger.payments,
    countTokens: countTextTokensChunked,
    settlementMarginSeconds: config.settlementMarginSeconds,
    publicUrl: config.publicUrl,
    chain,
    logger,
    verifyTimeoutMs,
    settleTimeoutMs,
    receiptSigner: config.receipts?.signingKey
      ? createReceiptSigner({ privateKey: config.receipts.signingKey as Hex })
      : undefined,
    onBillingEvent: combineBillingListeners(metrics.onBillingEvent, onBillingEvent),
  });
  if (!billing.receiptSigner)
    logger.warn("no receipts.signingKey: settled responses carry no signed receipts");
  const recovery = createPaymentRecovery({
    payments: ledger.payments,
    settlements: ledger.settlements,
    facilitator,
    chain,
    network: preset.network,
    facilitatorAddress,
    graceMs: config.recovery.graceSeconds * 1000,
    settlingGraceMs: config.recovery.settlingGraceSeconds * 1000,
    settleTimeoutMs,
    confirmAfterMs: config.recovery.confirmAfterSeconds * 1000,
    confirmWithinSeconds: config.maxTimeoutSeconds,
    logger,
  });
  // Replicas share the ledger: the pass at start could take a sibling's live request for a stopped one's.
  if (config.ledger.databaseUrl !== undefined && config.recovery.graceSeconds < 30)
    logger.warn(
      { graceSeconds: config.recovery.graceSeconds },
      "recovery.graceSeconds is below 30 s on a PostgreSQL ledger: the recovery pass at start may fail a request another replica is serving (it refreshes its row every 10 s); keep it only with a single gateway",
    );
  for (const problem of recoveryTimingProblems(config))
    logger.warn({ field: problem.key, maxTimeoutSeconds: config.maxTimeoutSeconds }, problem.message);
  // Before serving: finish what a previous run left (rows older than the grace period); never fatal, and a
  // long backlog (a slow chain) finishes in the background after 30 s rather than hold the port closed.
  const firstPass = recovery
    .runOnce()
    .catch((error: unknown) => logger.warn({ error: String(error) }, "recovery at start failed"));
  let startupTimer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    firstPass,
    new Promise<void>((resolve) => {
      startupTimer = setTimeout(resolve, 30_000);
    }),
  ]);
  clearTimeout(startupTimer);
  recovery.start(config.recovery.intervalSeconds * 1000);
  const app = createGatewayApp({
    billing,
    logger,
    maxBodyBytes: config.server.maxBodyBytes,
    refundChannel: channels?.refund,
    extraRoutes: routes && ((app) => routes(app, billing)),
  });
  mountOperatorRoutes(app as never, {
    ledger,
    metrics: config.metrics.enabled ? { registry: metrics.registry, token: config.metrics.token } : undefined,
    dashboard:
      config.dashboard.enabled && config.dashboard.token
        ? {
            token: config.dashboard.token,
            listChannels: channels ? () => dashboardChannelsOf(ledger) : undefined,
          }
        : undefined,
  });
  const server = await new Promise<ReturnType<typeof serve>>((resolve, reject) => {
    const instance = serve({ fetch: app.fetch, hostname: config.server.host, port: config.server.port }, () =>
      resolve(instance),
    );
    instance.once("error", reject);
  }).catch(async (error: unknown) => {
    // The port is taken (or the like): what started stops, and the ledger closes.
    await recovery.stop();
    await channels?.settlement.stop({ flush: false });
    await replica.leave();
    await closeOwnLedger();
    throw error;
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : config.server.port;
  const url = `http://${config.server.host}:${port}`;
  logger.info({ url, network: preset.network, models: config.models.map((m) => m.id) }, "gateway listening");
  return {
    url,
    port,
    billing,
    ledger,
    facilitator,
    recovery,
    channels,
    metrics: metrics.registry,
    metricsUrl: config.metrics.enabled ? `${url}/metrics` : undefined,
    dashboardUrl:
      config.dashboard.enabled && config.dashboard.token
        ? `${url}/dashboard?token=${encodeURIComponent(config.dashboard.token)}`
        : undefined,
    async close() {
      await recovery.stop();
      // No more requests; the streams under way are cut, each charged for what it delivered.
      billing.stopReadingOn();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      });
      // Their charges are recorded (and upto ones settled) before the last claim, which takes them too;
      // a request whose charge is not recorded before the ledger closes would be served free.
      await finishServedRequests(billing, logger);
      // Outstanding vouchers are claimed and settled before the gateway goes (bounded, logged).
      await channels?.settlement.stop({ flush: true });
      await replica.leave();
      if (!givenLedger) await ledger.close();
    },
  };
}

/** How long a stopping gateway waits for the money of the requests it was serving to be final. */
const SHUTDOWN_SETTLE_MS = 10_000;

/** Waits (bounded, logged) for every request served to have its money final. */
async function finishServedRequests(billing: Billing, logger: Logger): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const outcome = await Promise.race([
    billing.whenSettled().then(() => "done" as const),
    new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), SHUTDOWN_SETTLE_MS);
    }),
  ]);
  clearTimeout(timer);
  if (outcome === "timeout")
    logger.warn(
      { timeoutMs: SHUTDOWN_SETTLE_MS },
      "requests served before shutdown did not finish settling in time; recovery finishes them at the next start (or on a sibling replica)",
    );
}

/** The channels term replicas must agree on: the receiver-authorizer address channels are claimed with, or "off". */
function channelsTermOf(config: GatewayConfig): string {
  if (!config.channels) return "off";
  const key =
    config.channels.receiverAuthorizerKey ??
    ("privateKey" in config.facilitator ? config.facilitator.privateKey : undefined);
  if (!key) return "on";
  try {
    return privateKeyAccount(key as Hex).address;
  } catch {
    return "on";
  }
}

/** The payment channels the config asks for, with their receiver-authorizer key; undefined without `channels`. */
async function openChannels(
  config: GatewayConfig,
  terms: Parameters<typeof startChannels>[0]["terms"],
  ledger: Ledger,
  facilitator: FacilitatorLike,
  chain: PublicClient | undefined,
  logger: Logger,
  emit: (event: BillingEvent) => void,
): Promise<GatewayChannels | undefined> {
  if (!config.channels) {
    // Charges the ledger holds on this network's channels would never be claimed: refused, as a changed payTo is.
    const refuseUnclaimed = () =>
      refuseStrandedChannels({
        channels: ledger.channels,
        network: terms.network,
        receiver: terms.payTo,
        token: terms.asset,
        claims: "none",
      });
    // The chain is read only when channels hold money (a gateway without channels needs no chain at start):
    // they may be a finished devnet's, which binding to this chain sets aside.
    const held = await refuseUnclaimed().then(
      () => false,
      () => true,
    );
    if (held && chain)
      await bindLedgerToChain({ channels: ledger.channels, chain, network: terms.network, logger });
    if (held) await refuseUnclaimed();
    return undefined;
  }
  // The CLI reads the variable; a config given to startGateway carries the key itself.
  if (config.channels.receiverAuthorizerKeyEnv !== undefined && !config.channels.receiverAuthorizerKey)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `config key channels.receiverAuthorizerKeyEnv: the variable ${config.channels.receiverAuthorizerKeyEnv} was not read (tollgate gateway reads it; a config given to startGateway passes the key itself as channels.receiverAuthorizerKey): without it the channels would be claimed with the facilitator's key`,
    });
  const key =
    config.channels.receiverAuthorizerKey ??
    ("privateKey" in config.facilitator ? config.facilitator.privateKey : undefined);
  if (!key || !chain)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        "config key channels: payment channels need a receiver-authorizer key (channels.receiverAuthorizerKeyEnv, or an in-process facilitator key) and an rpcUrl",
    });
  return startChannels({
    config: config.channels,
    terms,
    channels: ledger.channels,
    payments: ledger.payments,
    quotas: ledger.quotas,
    facilitator,
    chain,
    receiverAuthorizerKey: key as Hex,
    logger,
    emit,
  });
}

/**
 * Whether a remote facilitator refuses this gateway's token (its status, 401 or 403), asked with a bodiless
 * `GET /verify` (a facilitator that takes the token answers 404 or 405; no body is left unread on the
 * connection): one that is not reached is left to the first payment's verify.
 */
async function facilitatorRefusesToken(url: string, token: string | undefined): Promise<number | undefined> {
  try {
    const response = await fetch(`${url.replace(/\/+$/, "")}/verify`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
      signal: AbortSignal.timeout(10_000),
    });
    await response.body?.cancel();
    return response.status === 401 || response.status === 403 ? response.status : undefined;
  } catch {
    return undefined;
  }
}

async function createConfiguredFacilitator(
  config: GatewayConfig,
  network: `eip155:${number}`,
  defaultRpcUrl: string | undefined,
  ledger: Ledger,
  logger: Logger,
  pollingIntervalMs: number | undefined,
  onFacilitatorEvent: FacilitatorEventListener,
): Promise<TollgateFacilitator | FacilitatorClient> {
  if ("url" in config.facilitator)
    return createFacilitatorClient({
      url: config.facilitator.url,
      token: config.facilitator.token,
      timeoutMs: config.facilitator.timeoutMs,
      relaysApprovals: await facilitatorRelaysApprovals(config.facilitator.url, config.facilitator.token),
    });
  const privateKey = config.facilitator.privateKey;
  const rpcUrl = config.rpcUrl ?? defaultRpcUrl;
  if (!privateKey || !rpcUrl) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage:
        "config key facilitator: give either url (a remote facilitator) or a private key (in-process) with rpcUrl",
    });
  }
  return createFacilitator({
    rpcUrl,
    privateKey: privateKey as Hex,
    network,
    logger,
    pollingIntervalMs,
    settlementStore: settlementStoreFromLog(ledger.settlements),
    payerQuotas: ledger.quotas,
    rpcBatch: config.facilitator.rpcBatch,
    gasSponsoring: config.facilitator.gasSponsoring,
    onFacilitatorEvent,
    // The ledger admits a payment carrying an EIP-2612 permit alone among its payer's, across replicas.
    holdPermits: false,
    // It moves the gateway's own asset only: no other reaches it through the gateway's offers.
    assets: [(config.asset ?? findNetworkPreset(network)?.usdc) as string].filter(Boolean),
  });
}

/**
 * Refuses an asset the gateway cannot count in 6-decimal units: one whose `decimals()` is not 6, or
 * one whose decimals cannot be read (a price would be sold at 10^-12 of itself in an 18-decimal
 * token). Only the network preset's own USDC, whose 6 decimals are known, starts without the chain.
 */
async function assertUsdcDecimals({
  chain,
  asset,
  rpcUrl,
  presetUsdc,
}: {
  chain: PublicClient | undefined;
  asset: Address;
  rpcUrl: string | undefined;
  presetUsdc: Address | undefined;
}): Promise<void> {
  if (presetUsdc !== undefined && isAddressEqual(asset, presetUsdc)) return;
  let decimals: number;
  try {
    if (!chain) throw new Error("no rpcUrl is configured and the network has no default");
    decimals = await chain.readContract({ address: asset, abi: erc20Abi, functionName: "decimals" });
  } catch (cause) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `config key asset: the decimals of ${asset} could not be read from the RPC ${rpcUrl ?? "(none)"} (${shortCause(cause)}); the gateway counts every "$" amount in ${USDC_DECIMALS}-decimal units and does not start on a token whose decimals it has not checked: set rpcUrl to an RPC of this network that answers, check that asset is the token's address, or leave asset unset to use the network's USDC`,
      details: { field: "asset" },
      cause,
    });
  }
  if (decimals !== USDC_DECIMALS)
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `config key asset: ${asset} has ${decimals} decimals; the gateway counts prices and amounts in ${USDC_DECIMALS}-decimal units ("$1" is 1,000,000 atomic units), as USDC and the x402 stablecoins are, so in this token every price would be off by 10^${decimals - USDC_DECIMALS}: use a ${USDC_DECIMALS}-decimal token`,
    });
}

/** The first line of an error's message: viem's messages run to many lines of request details. */
function shortCause(cause: unknown): string {
  const message =
    cause instanceof Error
      ? ((cause as { shortMessage?: string }).shortMessage ?? cause.message)
      : String(cause);
  return message.split("\n")[0] ?? message;
}

/** Whether `asset` answers EIP-2612's `nonces(owner)`; an unreachable chain counts as yes (the default). */
async function hasEip2612(chain: PublicClient, asset: Address): Promise<boolean> {
  try {
    await chain.readContract({
      address: asset,
      abi: eip2612NoncesAbi,
      functionName: "nonces",
      args: [asset],
    });
    return true;
  } catch (error) {
    if (!(error instanceof ContractFunctionExecutionError)) return true;
    return Boolean(error.walk((cause) => cause instanceof HttpRequestError || cause instanceof TimeoutError));
  }
}
