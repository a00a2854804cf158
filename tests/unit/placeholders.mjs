// The reference ThumbHash and BlurHash code (npm `thumbhash`, `blurhash`), for
// tests/unit/test_fingerprints.py: reads {"items": [{width, height, rgba (base64), thumbhash
// (base64), blurhash}]} on stdin; writes, for each, what the reference encoders make of the same
// pixels and the mean colour of what the reference decoders make of our strings.
import { createRequire } from "node:module";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const modules = process.argv[2]; // var/node/node_modules
const thumbhash = await import(pathToFileURL(join(modules, "thumbhash", "thumbhash.js")).href);
const blurhash = createRequire(join(modules, "x.js"))("blurhash");

function mean(rgba, weighAlpha) {
  const sum = [0, 0, 0];
  let weight = 0;
  for (let i = 0; i < rgba.length; i += 4) {
    const w = weighAlpha ? rgba[i + 3] / 255 : 1;
    for (let c = 0; c < 3; c++) sum[c] += rgba[i + c] * w;
    weight += w;
  }
  return sum.map((s) => s / Math.max(weight, 1e-9));
}

// BlurHash averages in linear light: its decoded mean, the same way, back in sRGB.
const toLinear = (v) => ((v /= 255) <= 0.04045 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
const toSrgb = (v) => 255 * (v <= 0.0031308 ? v * 12.92 : 1.055 * v ** (1 / 2.4) - 0.055);
function linearMean(rgba) {
  const linear = rgba.map(toLinear);
  for (let i = 3; i < linear.length; i += 4) linear[i] = 1;
  return mean(linear.map((v) => v * 255), false).map((v) => toSrgb(v / 255));
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const out = JSON.parse(input).items.map((item) => {
  const rgba = new Uint8Array(Buffer.from(item.rgba, "base64"));
  const ours = new Uint8Array(Buffer.from(item.thumbhash, "base64"));
  const decoded = thumbhash.thumbHashToRGBA(ours);
  return {
    thumbhash_ref: Buffer.from(thumbhash.rgbaToThumbHash(item.width, item.height, rgba)).toString("base64"),
    blurhash_ref: blurhash.encode(new Uint8ClampedArray(rgba), item.width, item.height, 4, 3),
    blurhash_valid: blurhash.isBlurhashValid(item.blurhash).result,
    thumbhash_mean: mean(decoded.rgba, true),
    blurhash_mean: linearMean(Array.from(blurhash.decode(item.blurhash, 32, 32))),
  };
});
process.stdout.write(JSON.stringify(out));
