import type { GatewayConfig } from "./gatewayConfig.js";

/** How long the in-process facilitator waits for a settlement's receipt (its signer's default). */
const IN_PROCESS_RECEIPT_WAIT_SECONDS = 60;

/** A recovery setting that leaves recovery to act only once the authorizations it needs have lapsed. */
export type RecoveryTimingProblem = { key: string; message: string };

/**
 * The `recovery` keys not shorter than `maxTimeoutSeconds`, the time a buyer's authorization is signed for
 * (and `intervalSeconds` when the grace and one interval together are not):
 * recovery acts on a row only once its grace has passed, and reads a settlement back only while it was booked
 * within `maxTimeoutSeconds`, so with such a value a payment a stopped gateway left metered or settling is
 * settled only after its authorization lapsed, or no settlement is ever read back. The gateway serves all the
 * same (a short `maxTimeoutSeconds` with the default recovery is valid), so these are warnings at start.
 */
export function recoveryTimingProblems(
  config: Pick<GatewayConfig, "maxTimeoutSeconds" | "recovery" | "facilitator" | "ledger">,
): RecoveryTimingProblem[] {
  const { maxTimeoutSeconds, recovery } = config;
  const problems: RecoveryTimingProblem[] = [];
  // The in-process facilitator waits this long for a settlement's receipt, past timeouts.settleSeconds; in
  // one process a second settle of it joins the first, but a sibling replica's recovery sends its own.
  if (
    !("url" in config.facilitator) &&
    config.ledger.databaseUrl !== undefined &&
    recovery.settlingGraceSeconds <= IN_PROCESS_RECEIPT_WAIT_SECONDS
  )
    problems.push({
      key: "recovery.settlingGraceSeconds",
      message: `config key recovery.settlingGraceSeconds: ${recovery.settlingGraceSeconds} s is not longer than the ${IN_PROCESS_RECEIPT_WAIT_SECONDS} s the in-process facilitator waits for a settlement's receipt: on a PostgreSQL ledger shared with replicas, a sibling's recovery may settle again a payment whose transaction this gateway still waits on, a second transaction at the seller's gas that fails; raise it to at least ${IN_PROCESS_RECEIPT_WAIT_SECONDS + 30}, or keep it only with a single gateway`,
    });
  const checks = [
    {
      key: "recovery.graceSeconds",
      seconds: recovery.graceSeconds,
      what: "a payment a stopped gateway left metered, its charge recorded, would be settled only after its authorization lapsed: the seller's loss",
    },
    {
      key: "recovery.settlingGraceSeconds",
      seconds: recovery.settlingGraceSeconds,
      what: "a payment a stopped gateway left settling would be settled again only after its authorization lapsed: the seller's loss",
    },
    {
      key: "recovery.confirmAfterSeconds",
      seconds: recovery.confirmAfterSeconds,
      what: "no settlement is read back from the chain (only those booked within maxTimeoutSeconds are), so one whose block is reorganised away is never found and settled again: the seller's loss",
    },
  ];
  for (const { key, seconds, what } of checks)
    if (seconds >= maxTimeoutSeconds)
      problems.push({
        key,
        message: `config key ${key}: ${seconds} s is not shorter than maxTimeoutSeconds (${maxTimeoutSeconds}), the time a buyer's authorization is signed for: ${what}; lower ${key}, with recovery.intervalSeconds, well below maxTimeoutSeconds, or raise maxTimeoutSeconds`,
      });
  // Recovery acts at the first pass after a grace: up to a whole interval later.
  const { intervalSeconds } = recovery;
  const late = checks.filter(
    ({ seconds }) => seconds < maxTimeoutSeconds && seconds + intervalSeconds >= maxTimeoutSeconds,
  );
  const longest = late.reduce<(typeof late)[number] | undefined>(
    (found, check) => (found === undefined || check.seconds > found.seconds ? check : found),
    undefined,
  );
  if (longest)
    problems.push({
      key: "recovery.intervalSeconds",
      message: `config key recovery.intervalSeconds: a recovery pass every ${intervalSeconds} s after ${late.map(({ key, seconds }) => `${key} (${seconds})`).join(" and ")} acts up to ${longest.seconds + intervalSeconds} s later, not within maxTimeoutSeconds (${maxTimeoutSeconds}), the time a buyer's authorization is signed for: ${longest.what}; lower recovery.intervalSeconds below ${maxTimeoutSeconds - longest.seconds} (default 15), or raise maxTimeoutSeconds`,
    });
  return problems;
}
