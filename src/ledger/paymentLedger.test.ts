import { openPgliteHarness } from "./testkit/ledgerHarness.js";
import { describePaymentLedger } from "./testkit/paymentLedgerSuite.js";

describePaymentLedger("PGlite", openPgliteHarness);
