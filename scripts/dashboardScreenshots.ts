// Writes screenshots of the operator's dashboard and the buyer's spend page after a few real payments on
// the local devnet: `npx tsx scripts/dashboardScreenshots.ts [out-dir]` (default docs/). Needs Debian's
// chromium (`apt-get install chromium`; another binary through TOLLGATE_CHROMIUM).
import { join } from "node:path";
import { createPayingFetch, openSpendStore, parseSpendingPolicy } from "../src/buyer/index.js";
import { serveSpendDashboard } from "../src/cli/spendDashboard.js";
import { startDemoBackend } from "../src/demo/index.js";
import { startDevnet } from "../src/devnet/index.js";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { launchChromium } from "../test/support/launchChromium.js";

const outDir = process.argv[2] ?? "docs";
const devnet = await startDevnet({ buyers: 3 });
const demo = await startDemoBackend({ countTokens: (text) => countTextTokens(text), tokensPerSecond: 0 });
const gateway = await startGateway({
  config: parseGatewayConfig({
    network: devnet.network,
    rpcUrl: devnet.rpcUrl,
    asset: devnet.contracts.usdc,
    assetDomain: { name: "USD Coin", version: "2" },
    payTo: devnet.accounts.payTo.address,
    facilitator: { privateKey: devnet.accounts.facilitator.privateKey },
    server: { host: "127.0.0.1", port: 0 },
    ledger: { dataDir: "memory://" },
    dashboard: { enabled: true, token: "screenshot-token-0123456789" },
    models: [
      {
        id: demo.model,
        backend: { baseUrl: demo.url },
        inputPrice: "$0.50",
        outputPrice: "$1.50",
        maxOutputTokens: 1024,
      },
      {
        id: "tollgate-demo-large",
        backend: { baseUrl: demo.url, model: demo.model },
        inputPrice: "$3.00",
        outputPrice: "$15.00",
        maxOutputTokens: 2048,
      },
    ],
  }),
  pollingIntervalMs: 20,
});
const store = await openSpendStore({ dataDir: "memory://" });
const policy = parseSpendingPolicy({
  perCall: "$0.10",
  daily: "$1.00",
  providers: { [new URL(gateway.url).origin]: { daily: "$0.25" } },
});
const browser = await launchChromium();
try {
  const buyers = devnet.accounts.buyers;
  const questions = [
    "What is a toll road?",
    "Explain x402 in one paragraph.",
    "Why pay per token?",
    "Name three bridges.",
  ];
  for (const [i, buyer] of buyers.entries()) {
    const payingFetch = createPayingFetch({ privateKey: buyer.privateKey, store, policy });
    for (const [j, question] of questions.entries()) {
      const model = (i + j) % 3 === 0 ? "tollgate-demo-large" : demo.model;
      const response = await payingFetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model,
          messages: [{ role: "user", content: question }],
          max_tokens: 120 + 90 * j,
        }),
      });
      await response.text();
    }
    await payingFetch.idle();
    await payingFetch.close();
  }
  const spendPage = await serveSpendDashboard({ store, policy, host: "127.0.0.1", port: 0 });
  const page = await browser.context.newPage();
  await page.setViewportSize({ width: 1280, height: 1100 });
  await page.goto(gateway.dashboardUrl!);
  await page.screenshot({ path: join(outDir, "dashboard.png"), fullPage: true });
  await page.goto(spendPage.url);
  await page.screenshot({ path: join(outDir, "spend-dashboard.png"), fullPage: true });
  await spendPage.close();
  process.stdout.write(`wrote ${join(outDir, "dashboard.png")} and ${join(outDir, "spend-dashboard.png")}\n`);
} finally {
  await browser.close();
  await store.close();
  await gateway.close();
  await demo.close();
  await devnet.stop();
}
