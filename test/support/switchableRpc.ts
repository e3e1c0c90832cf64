import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/** How the chain's RPC fails once cut: nothing listens (connection refused), or it accepts and never answers. */
export type RpcOutage = "refused" | "silent";

export type SwitchableRpc = {
  url: string;
  /** Cuts the RPC: open connections are dropped, and new ones fail as `outage` says. */
  cut(outage: RpcOutage): Promise<void>;
  /** Holds the RPC: open connections are dropped, and new ones wait, unanswered, until `release`. */
  hold(): void;
  /** Lets the held connections through to the chain, and every later one. */
  release(): void;
  close(): Promise<void>;
};

/**
 * A TCP relay in front of a chain's RPC that a test can cut: a gateway starts on a chain that answers
 * (it reads its asset's decimals before it serves), then meets the outage the test is about.
 */
export async function startSwitchableRpc(target: string): Promise<SwitchableRpc> {
  const { hostname, port } = new URL(target);
  let forwarding = true;
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  let held: Socket[] | undefined;
  const relay = (client: Socket) => {
    const upstream = connect(Number(port), hostname);
    track(upstream);
    upstream.on("close", () => client.destroy());
    client.on("close", () => upstream.destroy());
    client.pipe(upstream).pipe(client);
  };
  const server = createServer((client) => {
    track(client);
    if (!forwarding) return;
    if (held) held.push(client);
    else relay(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const dropAll = () => {
    for (const socket of sockets) socket.destroy();
  };
  const stopListening = () =>
    new Promise<void>((resolve) => (server.listening ? server.close(() => resolve()) : resolve()));
  return {
    url,
    async cut(outage) {
      forwarding = false;
      if (outage === "refused") {
        const closed = stopListening();
        dropAll();
        await closed;
      } else dropAll();
    },
    hold() {
      held ??= [];
      dropAll();
    },
    release() {
      const waiting = held ?? [];
      held = undefined;
      for (const client of waiting) if (!client.destroyed) relay(client);
    },
    async close() {
      const closed = stopListening();
      dropAll();
      await closed;
    },
  };
}
