import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { TollgateError } from "../errors/index.js";
import { launchAnvil } from "./launchAnvil.js";

const chainIdAt = async (rpcUrl: string) => {
  const response = await fetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_chainId", params: [] }),
  });
  return ((await response.json()) as { result: string }).result;
};

test("a fixed port where another JSON-RPC node already answers fails at once, naming the port; that node is left alone", async () => {
  // Another node on the port: it answers eth_chainId, as anvil would, with another chain id.
  const other = createServer((_request, response) => {
    response.setHeader("content-type", "application/json");
    response.end(JSON.stringify({ jsonrpc: "2.0", id: 1, result: "0x2a" }));
  });
  await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
  const { port } = other.address() as AddressInfo;
  try {
    const startedAt = Date.now();
    await assert.rejects(launchAnvil({ port, chainId: 31337 }), (error: unknown) => {
      assert.ok(error instanceof TollgateError);
      assert.equal(error.code, "TOLLGATE_DEVNET_FAILED");
      assert.match(
        error.shortMessage,
        new RegExp(`port ${port} on 127\\.0\\.0\\.1 is taken by another process`),
      );
      return true;
    });
    assert.ok(Date.now() - startedAt < 10_000, "told before the start timeout");
    assert.equal(await chainIdAt(`http://127.0.0.1:${port}`), "0x2a", "the other node still answers");
  } finally {
    other.closeAllConnections();
    await new Promise((resolve) => other.close(resolve));
  }
});

test("a free fixed port: anvil answers there with its chain id, and is gone once stopped", async () => {
  // A port that was free a moment ago.
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  const node = await launchAnvil({ port, chainId: 31338 });
  try {
    assert.equal(node.port, port);
    assert.equal(await chainIdAt(node.rpcUrl), "0x7a6a");
  } finally {
    await node.stop();
  }
  await assert.rejects(chainIdAt(node.rpcUrl), "nothing answers once stopped");
});

test("on IPv6 loopback, the port is read from anvil's banner and the RPC address is bracketed", async (t) => {
  const probe = createServer();
  const ipv6 = await new Promise<boolean>((resolve) => {
    probe.once("error", () => resolve(false));
    probe.listen(0, "::1", () => resolve(true));
  });
  if (ipv6) await new Promise((resolve) => probe.close(resolve));
  else return t.skip("no IPv6 loopback on this machine");
  const node = await launchAnvil({ host: "::1", chainId: 31339 });
  try {
    assert.match(node.rpcUrl, /^http:\/\/\[::1\]:\d+$/);
    assert.equal(await chainIdAt(node.rpcUrl), "0x7a6b");
  } finally {
    await node.stop();
  }
});
