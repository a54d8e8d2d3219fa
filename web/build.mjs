// Bundles src/ into dist/ (run by `npm run build`; scripts/setup.sh does it): one JS and one
// CSS file with content hashes in their names (served as immutable by the aggregator), the
// images Leaflet's CSS refers to, and index.html pointing at them (served as no-cache).
// Everything the page needs is in dist/: nothing is fetched from a CDN at run time.
import * as esbuild from "esbuild";
import { readFileSync, writeFileSync, rmSync, mkdirSync } from "node:fs";
import path from "node:path";

const dist = "dist";
rmSync(dist, { recursive: true, force: true });
mkdirSync(dist, { recursive: true });

const result = await esbuild.build({
  entryPoints: ["src/main.js"],
  bundle: true,
  minify: true,
  sourcemap: false,
  target: ["chrome100", "firefox100", "safari15"],
  format: "iife",
  outdir: dist,
  entryNames: "[name]-[hash]",
  assetNames: "[name]-[hash]",
  loader: { ".png": "file", ".svg": "file" },
  metafile: true,
  logLevel: "warning",
  legalComments: "linked",
});

const outs = Object.keys(result.metafile.outputs).map((p) => path.relative(dist, p));
const js = outs.find((p) => /^main-.*\.js$/.test(p));
const css = outs.find((p) => /^main-.*\.css$/.test(p));
if (!js || !css) throw new Error(`esbuild did not write main-*.js and main-*.css: ${outs}`);
const html = readFileSync("src/index.html", "utf8").replace("%JS%", js).replace("%CSS%", css);
writeFileSync(path.join(dist, "index.html"), html);
console.log(`web/dist: ${["index.html", ...outs].join(", ")}`);
