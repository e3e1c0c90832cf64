import { openPgliteHarness } from "./testkit/ledgerHarness.js";
import { describeSettlementLog } from "./testkit/settlementLogSuite.js";

describeSettlementLog("PGlite", openPgliteHarness);
