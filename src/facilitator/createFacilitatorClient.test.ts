import assert from "node:assert/strict";
import { type AddressInfo, createServer } from "node:net";
import { test } from "node:test";
import { facilitatorRelaysApprovals } from "./createFacilitatorClient.js";

test("a facilitator whose first connection is reset is asked again: one that answers 405 to GET /relay-approval relays approves", async () => {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    if (connections === 1) {
      socket.resetAndDestroy();
      return;
    }
    socket.once("data", () =>
      socket.end(
        "HTTP/1.1 405 Method Not Allowed\r\nallow: POST\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
      ),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.equal(await facilitatorRelaysApprovals(url, undefined), true);
    assert.equal(connections, 2, "asked twice");
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});
