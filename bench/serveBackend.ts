// Bench child: one controllable OpenAI-compatible backend per profile, in its own process.
import { startMockBackend } from "../test/support/mockBackend.js";
import { serveUntilStdinEnds } from "./childProcess.js";
import { backendProfiles, type ProfileName } from "./settings.js";

export type BackendReady = { urls: Record<ProfileName, string> };

const names = Object.keys(backendProfiles) as ProfileName[];
const backends = await Promise.all(
  names.map((name) =>
    startMockBackend({
      tokensPerSecond: backendProfiles[name].tokensPerSecond,
      responseTokens: backendProfiles[name].responseTokens,
      reportUsage: true,
    }),
  ),
);
// The mock records every request; drop the records now and then so memory stays flat.
const sweep = setInterval(() => {
  for (const backend of backends) backend.clearRequests();
}, 5_000);
sweep.unref();

const urls = Object.fromEntries(names.map((name, i) => [name, backends[i]!.url])) as Record<
  ProfileName,
  string
>;
serveUntilStdinEnds({ urls } satisfies BackendReady, async () => {
  clearInterval(sweep);
  await Promise.all(backends.map((backend) => backend.close()));
});
