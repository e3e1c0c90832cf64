import { TollgateError } from "../errors/index.js";
import { formatMoney } from "../pricing/index.js";

/** The policy rule that refused a payment. */
export type PolicyRule =
  | "networks"
  | "onlyProviders"
  | "assets"
  | "scheme"
  | "perCall"
  | "daily"
  | "providers.perCall"
  | "providers.daily"
  | "providers.payTo"
  | "maxTimeoutSeconds"
  | "providers.maxTimeoutSeconds"
  | "maxOverExpected"
  | "maxDeposit"
  | "providers.maxDeposit"
  | "maxEscrow"
  | "maxWithdrawDelaySeconds"
  | "confirmAbove"
  | "maxImagePrice"
  | "maxPricePerSecond"
  | "maxCharacterPrice"
  | "listedPrices";

/** Rules that judge how long an authorization lives, which a model listing may not say. */
export const TIMEOUT_RULES: ReadonlySet<PolicyRule> = new Set([
  "maxTimeoutSeconds",
  "providers.maxTimeoutSeconds",
]);

/** Why a payment was refused, with the figures; data until it is thrown. */
export type PolicyRefusal = {
  rule: PolicyRule;
  message: string;
  /** The limit the rule sets, in atomic units (a cap, or `maxOverExpected × expected`). */
  limitAtomic?: bigint;
  /** The maximum the seller asked the buyer to authorize. */
  askedAtomic?: bigint;
  /** The buyer's own estimate of the maximum (`maxOverExpected`). */
  expectedAtomic?: bigint;
  /** Already counted against a daily cap (reserved and charged today). */
  spentAtomic?: bigint;
  origin?: string;
  [key: string]: unknown;
};

/** A refusal as the typed error `TOLLGATE_POLICY_REFUSED`; nothing has been signed. */
export function policyRefusedError(refusal: PolicyRefusal): TollgateError {
  const { message, ...details } = refusal;
  return new TollgateError({ code: "TOLLGATE_POLICY_REFUSED", shortMessage: message, details });
}

/** `$0.05` for atomic units; the short form used in refusal messages. */
export function money(atomic: bigint): string {
  return formatMoney(atomic);
}
