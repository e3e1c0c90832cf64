// Replicas on one PostgreSQL must take money on the same terms (payTo, asset, channels and their
// receiver-authorizer): one started beside a live sibling on other terms is refused before it runs.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { generatePrivateKey } from "viem/accounts";
import { type Devnet, devAccount, startDevnet } from "../src/devnet/index.js";
import {
  type Gateway,
  type GatewayConfigInput,
  parseGatewayConfig,
  startGateway,
} from "../src/gateway/index.js";
import { createPostgresClient, type Ledger, openPostgresLedger } from "../src/ledger/index.js";
import { channelTestConfig } from "./support/channelFixtures.js";
import { testGatewayConfig } from "./support/gatewayHarness.js";
import { type MockBackend, startMockBackend } from "./support/mockBackend.js";

// Tests may read the environment; the library never does.
const connectionString = process.env.TOLLGATE_TEST_DATABASE_URL;

if (!connectionString) {
  test("replicas agree on their terms", {
    skip: "set TOLLGATE_TEST_DATABASE_URL to run against PostgreSQL",
  }, () => {});
} else {
  const schema = `tollgate_terms_${process.pid}_${Date.now().toString(36)}`;
  let devnet: Devnet;
  let backend: MockBackend;
  let input: GatewayConfigInput;
  const ledgers: Ledger[] = [];
  const running = new Set<Gateway>();

  const replica = async (config: GatewayConfigInput, facilitator?: Gateway["facilitator"]) => {
    const ledger = await openPostgresLedger({ connectionString, schema });
    ledgers.push(ledger);
    const gateway = await startGateway({
      config: parseGatewayConfig(config),
      ledger,
      facilitator,
      pollingIntervalMs: 20,
    });
    running.add(gateway);
    return gateway;
  };
  const stop = async (gateway: Gateway) => {
    running.delete(gateway);
    await gateway.close();
  };
  let first: Gateway;

  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    backend = await startMockBackend();
    input = channelTestConfig(testGatewayConfig({ devnet, backendUrl: backend.url }));
    first = await replica(input);
  });

  after(async () => {
    for (const gateway of running) await gateway.close();
    for (const ledger of ledgers) await ledger.close();
    await backend?.close();
    await devnet?.stop();
    const sql = await createPostgresClient({ connectionString });
    await sql.exec(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).finally(() => sql.close());
  });

  const refusal = (pattern: RegExp) => (error: unknown) => {
    const { code, message } = error as { code?: string; message: string };
    assert.equal(code, "TOLLGATE_CONFIG_INVALID");
    assert.match(message, /another gateway on this database/);
    assert.match(message, pattern);
    return true;
  };

  describe("a replica beside a live one on one PostgreSQL", () => {
    test("with another receiver-authorizer key is refused: the first one's channels would be claimed by nobody once it stops", async () => {
      await assert.rejects(
        replica(
          { ...input, channels: { ...input.channels, receiverAuthorizerKey: generatePrivateKey() } },
          first.facilitator,
        ),
        refusal(/channels \(receiver-authorizer\) 0x[0-9a-fA-F]{40} there, 0x[0-9a-fA-F]{40} here/),
      );
    });

    test("with its own facilitator key and no shared receiver-authorizer key is refused (the key defaults to the facilitator's)", async () => {
      await assert.rejects(
        replica({ ...input, facilitator: { privateKey: devAccount(8).privateKey } }),
        refusal(/receiver-authorizer/),
      );
    });

    test("without channels is refused", async () => {
      const { channels: _, ...withoutChannels } = input;
      await assert.rejects(replica(withoutChannels, first.facilitator), refusal(/there, off here/));
    });

    test("with another withdraw delay is refused: each refuses the other's channels of a shorter one", async () => {
      await assert.rejects(
        replica(
          { ...input, channels: { ...input.channels, withdrawDelaySeconds: 3_600 } },
          first.facilitator,
        ),
        refusal(/channels\.withdrawDelaySeconds 900 there, 3600 here/),
      );
    });

    test("with another payTo is refused", async () => {
      await assert.rejects(
        replica({ ...input, payTo: devnet.accounts.deployer.address }, first.facilitator),
        refusal(
          new RegExp(
            `payTo ${devnet.accounts.payTo.address} there, ${devnet.accounts.deployer.address} here`,
            "i",
          ),
        ),
      );
    });

    test("with the same terms starts; once every replica has stopped, a gateway on new terms starts", async () => {
      const second = await replica(input, first.facilitator);
      await stop(second);
      await stop(first);
      const moved = await replica({ ...input, payTo: devnet.accounts.deployer.address });
      assert.match(moved.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    });
  });
}
