// A static server for dist/ on 127.0.0.1, for the browser test and `make web-demo`.
// Any static host serves the page in production; this one can also hand out a
// config.json of its own and, for a local chain only, add the test wallet.
//
//   node dev/serve.mjs --port 8080 [--config cfg.json] [--test-wallet wallet.json]
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { extname, join, normalize } from "node:path";

const here = new URL("..", import.meta.url).pathname;
const TYPES = { ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".css": "text/css", ".json": "application/json", ".map": "application/json", ".txt": "text/plain" };

/**
 * Starts serving; resolves to the http.Server once it listens.
 * @param {{port?: number, config?: object, testWallet?: object}} options
 */
export function serve({ port = 0, config, testWallet } = {}) {
  const server = createServer(async (req, res) => {
    const path = normalize(decodeURIComponent(new URL(req.url, "http://x").pathname)).replace(/^(\.\.[/\\])+/, "");
    try {
      let body;
      if (path === "/config.json" && config) body = JSON.stringify(config);
      else if (path === "/dev/test-wallet.js" && testWallet) body = await readFile(join(here, "dist-dev", "test-wallet.js"));
      else body = await readFile(join(here, "dist", path === "/" ? "index.html" : path));
      if ((path === "/" || path === "/index.html") && testWallet) {
        const inject = `<script>window.crowdtrainTestWallet = ${JSON.stringify(testWallet)};</script><script src="dev/test-wallet.js"></script>\n  `;
        body = body.toString().replace('<script src="app.js">', inject + '<script src="app.js">');
      }
      res.writeHead(200, { "content-type": TYPES[extname(path)] ?? "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(body);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" });
      res.end("not found");
    }
  });
  return new Promise((resolve) => server.listen(port, "127.0.0.1", () => resolve(server)));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (name) => {
    const i = process.argv.indexOf(name);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const read = async (f) => (f ? JSON.parse(await readFile(f, "utf8")) : undefined);
  const server = await serve({ port: Number(arg("--port") ?? 8080), config: await read(arg("--config")), testWallet: await read(arg("--test-wallet")) });
  console.log(`crowdtrain web page at http://127.0.0.1:${server.address().port}/`);
}
