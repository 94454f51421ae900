// Builds the page into dist/ (index.html, style.css, config.json, app.js) and the
// local test wallet into dist-dev/ (never deployed). `node build.mjs`.
import { build } from "esbuild";
import { copyFileSync, mkdirSync, rmSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
const common = { alias: { util: `${here}src/shims/util.js` }, bundle: true, format: "iife", target: "es2022", platform: "browser", minify: true, sourcemap: true, logLevel: "warning", legalComments: "linked" };

rmSync(`${here}dist`, { recursive: true, force: true });
mkdirSync(`${here}dist`, { recursive: true });
mkdirSync(`${here}dist-dev`, { recursive: true });
for (const f of ["index.html", "style.css", "config.json"]) copyFileSync(`${here}${f}`, `${here}dist/${f}`);
await build({ ...common, entryPoints: [`${here}src/main.js`], outfile: `${here}dist/app.js` });
await build({ ...common, entryPoints: [`${here}dev/test-wallet.js`], outfile: `${here}dist-dev/test-wallet.js` });
