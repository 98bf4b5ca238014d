/**
 * A real nats-server for tests: 127.0.0.1, a free port, JetStream on, a temporary store dir,
 * optionally a small max_payload (a config file: nats-server 2.9 has no flag for it).
 */

/** A running server. */
export interface NatsServer {
  url: string;
  port: number;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its store; idempotent. */
  stop(): Promise<void>;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Starts nats-server and resolves once it accepts connections. */
export async function startNatsServer(
  options: { maxPayload?: number } = {},
): Promise<NatsServer> {
  const dir = await Deno.makeTempDir({ prefix: "autopar_nats_" });
  const args = ["-js", "-a", "127.0.0.1", "-sd", `${dir}/store`];
  if (options.maxPayload) {
    await Deno.writeTextFile(`${dir}/server.conf`, `max_payload: ${options.maxPayload}\n`);
    args.push("-c", `${dir}/server.conf`);
  }
  for (let attempt = 0;; attempt++) {
    const port = freePort();
    const child = new Deno.Command("nats-server", {
      args: [...args, "-p", String(port)],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const log: string[] = [];
    const status = child.status;
    const reader = (async () => {
      const dec = new TextDecoderStream();
      for await (const text of child.stderr.pipeThrough(dec)) log.push(text);
    })();
    let ready = false;
    for (let i = 0; i < 200 && !ready; i++) {
      if (log.join("").includes("Server is ready")) ready = true;
      else {
        const done = await Promise.race([
          status.then(() => true),
          new Promise<false>((r) => setTimeout(() => r(false), 25)),
        ]);
        if (done) break;
      }
    }
    if (ready) {
      let stopped = false;
      return {
        url: `nats://127.0.0.1:${port}`,
        port,
        async stop() {
          if (stopped) return;
          stopped = true;
          try {
            child.kill("SIGTERM");
          } catch { /* already gone */ }
          const t = setTimeout(() => {
            try {
              child.kill("SIGKILL");
            } catch { /* gone */ }
          }, 3000);
          await status;
          clearTimeout(t);
          await reader.catch(() => {});
          await Deno.remove(dir, { recursive: true }).catch(() => {});
        },
      };
    }
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await status;
    await reader.catch(() => {});
    if (attempt >= 2) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw new Error(`Cannot start nats-server ${args.join(" ")}: ${log.join("").slice(-2000)}`);
    }
  }
}
