import { type Logger, TollgateError } from "../errors/index.js";
import type { ModelConfig } from "./gatewayConfig.js";
import { routes } from "./routes/index.js";

export type AssertBackendBaseUrlsParameters = {
  models: readonly ModelConfig[];
  logger: Logger;
  /** How long each probe may take (ms); a backend slower than this at start is only warned about. */
  timeoutMs?: number;
};

/** What `GET <url>` answered: its HTTP status, or that nothing answered. */
type Probe = { status: number } | { unreachable: string };

/**
 * Refuses to start when a model's `backend.baseUrl` misses the `/v1` its OpenAI-compatible backend
 * answers under (`http://host:8000` for a vLLM server): `GET <baseUrl>/models` answers 404 while
 * `<baseUrl>/v1/models` answers, so every paid request would be sent where the backend answers 404.
 * A backend that answers 404 at `/models` with no `/v1` beside it, or does not answer at all (it may
 * be started after the gateway), is only warned about: nothing is charged for a request it refuses.
 */
export async function assertBackendBaseUrls({
  models,
  logger,
  timeoutMs = 3_000,
}: AssertBackendBaseUrlsParameters): Promise<void> {
  const probe = async (url: string, model: ModelConfig): Promise<Probe> => {
    const route = routes[model.kind];
    const headers: Record<string, string> = route.backendHeaders
      ? route.backendHeaders(model.backend.apiKey)
      : model.backend.apiKey
        ? { authorization: `Bearer ${model.backend.apiKey}` }
        : {};
    try {
      const response = await fetch(url, {
        headers,
        redirect: "manual",
        signal: AbortSignal.timeout(timeoutMs),
      });
      await response.body?.cancel().catch(() => undefined);
      return { status: response.status };
    } catch (error) {
      return { unreachable: String((error as Error).cause ?? error) };
    }
  };
  // Each base URL once, whichever models share it.
  const checked = new Map<string, Promise<void>>();
  const check = async (model: ModelConfig, index: number): Promise<void> => {
    const key = `models.${index}.backend.baseUrl`;
    const baseUrl = model.backend.baseUrl.replace(/\/+$/, "");
    const models = await probe(`${baseUrl}/models`, model);
    if ("unreachable" in models) {
      logger.warn(
        { model: model.id, baseUrl, error: models.unreachable },
        `config key ${key}: the backend at ${baseUrl} did not answer at start; the gateway starts all the same, and a paid request it cannot serve is charged nothing`,
      );
      return;
    }
    if (models.status !== 404) return;
    const withV1 = /\/v1$/.test(baseUrl) ? undefined : await probe(`${baseUrl}/v1/models`, model);
    if (withV1 !== undefined && "status" in withV1 && withV1.status >= 200 && withV1.status < 300)
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `config key ${key}: ${baseUrl} answers 404 at /models while ${baseUrl}/v1/models answers: every paid request to model ${model.id} would be sent to ${baseUrl}${routes[model.kind].path} and answered 404; set backend.baseUrl to ${baseUrl}/v1`,
        details: { field: key, baseUrl, suggested: `${baseUrl}/v1` },
      });
    logger.warn(
      { model: model.id, baseUrl },
      `config key ${key}: ${baseUrl} answers 404 at /models; if its API lives under another path (e.g. /v1), include it in backend.baseUrl: a paid request the backend answers 404 is charged nothing`,
    );
  };
  await Promise.all(
    models.map((model, index) => {
      const key = `${model.kind} ${model.backend.baseUrl}`;
      let done = checked.get(key);
      if (!done) {
        done = check(model, index);
        checked.set(key, done);
      }
      return done;
    }),
  );
}
